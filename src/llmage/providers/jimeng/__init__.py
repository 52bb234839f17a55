"""Jimeng (即梦) video generation on the Volcengine visual API: text-to-video, image-to-video and
first+last frame, signed with Volcengine V4 (HMAC-SHA256) from an access key + secret key.
PROVIDERS.md §7."""
