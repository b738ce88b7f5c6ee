"""The custom user model (AUTH_USER_MODEL) and its admin."""
