"""Placeholder router, filled in by its feature work."""

from fastapi import APIRouter

router = APIRouter()
