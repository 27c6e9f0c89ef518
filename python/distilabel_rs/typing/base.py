"""Chat message types (OpenAI conversational format)."""

from typing import List, Literal, Union

from typing_extensions import Required, TypedDict


class TextContent(TypedDict, total=False):
    type: Required[Literal["text"]]
    text: Required[str]


class ImageUrl(TypedDict):
    url: Required[str]
    """Either a URL of the image or the base64 encoded image data."""


class ImageContent(TypedDict, total=False):
    """A message part holding an image, as vision models take it."""

    type: Required[Literal["image_url"]]
    image_url: Required[ImageUrl]


class ChatItem(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: Union[str, list[Union[TextContent, ImageContent]]]


ChatType = List[ChatItem]
"""A conversation: a list of messages in the OpenAI format."""
