"""Kling (Kuaishou) video generation: text2video and image2video (first frame, optional last
frame `image_tail`) behind JWT auth (HS256 from an access key + secret key). PROVIDERS.md §6."""
