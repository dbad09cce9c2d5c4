"""The schema of a newsletter issue file."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from newsletter import markdown
from newsletter.fields import AbsoluteURL, HeaderText, ImageSource, Language, Slug, is_local


def _markdown(value: str) -> str:
    markdown.check(value)
    return value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Markdown = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_markdown)
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Image(Strict):
    """An article's picture. Alt text is required: many readers never see the image.

    `side` sits beside the text, `full` spans the card above it; each is shown at most as
    wide as its layout allows (the theme's image_max_width and full_image_width), and
    `width` can make it narrower. A local image's height comes from its file; a remote
    one's can be given (its height in pixels when shown at `width`), so that its cell
    keeps its shape while images are blocked."""

    src: ImageSource
    alt: Text = Field(max_length=250)
    layout: Literal["side", "full"] = "side"
    width: int | None = Field(default=None, ge=50, le=600)
    height: int | None = Field(default=None, ge=10, le=2000)

    @model_validator(mode="after")
    def _height_of_local_images(self) -> Image:
        if self.height is not None and is_local(self.src):
            raise ValueError(
                "height is read from the file of a local image; remove it (width is enough)"
            )
        return self


class Article(Strict):
    title: Text = Field(max_length=200)
    summary: Markdown
    link: AbsoluteURL
    image: Image | None = None
    # The button's label; the theme's "Read more" in the issue's language when absent.
    cta: Text | None = Field(default=None, max_length=40)


class Section(Strict):
    title: Text = Field(max_length=120)
    articles: list[Article] = Field(min_length=1)


class Issue(Strict):
    """One monthly bulletin, as the editor writes it in issues/*.yaml."""

    subject: HeaderText = Field(max_length=150)
    preheader: Text = Field(max_length=200)
    date: dt.date
    language: Language = "en"
    audience: Slug = "everyone"
    template: Slug = "default"
    # What "Hello ...," says without a name; the theme's word ("reader") when absent.
    name_fallback: Text | None = Field(default=None, max_length=60)
    intro: Markdown
    sections: list[Section] = Field(min_length=1)
    closing: Markdown

    def articles(self) -> list[Article]:
        return [article for section in self.sections for article in section.articles]
