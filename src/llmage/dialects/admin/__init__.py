"""The admin JSON API (`/api/admin/...`): operations for operators and the console."""
