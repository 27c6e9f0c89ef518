"""The API key every keyed LLM checks at `load()`, with distilabel's message."""

from typing import Optional

from pydantic import SecretStr

__all__ = ["required_api_key"]


def required_api_key(owner: object, api_key: Optional[SecretStr], env_var: str) -> SecretStr:
    """`api_key`, or distilabel's error naming the field and its environment variable.

    Args:
        owner: the LLM (its class names the error).
        api_key: its `api_key` field.
        env_var: the environment variable the field defaults to.

    Returns:
        The key.
    """
    if api_key is None:
        raise ValueError(
            f"To use `{type(owner).__name__}` an API key must be provided via `api_key`"
            " attribute or runtime parameter, or set the environment variable"
            f" `{env_var}`."
        )
    return api_key
