"""The optional front: nginx in front of the API, serving repeat tiles from its own cache."""
