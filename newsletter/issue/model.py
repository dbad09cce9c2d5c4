"""The schema of a newsletter issue file."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from newsletter import markdown
from newsletter.fields import AbsoluteURL, HeaderText, ImageSource, Language, Slug


def _markdown(value: str) -> str:
    markdown.check(value)
    return value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Markdown = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_markdown)
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Image(_Strict):
    """An article's picture. Alt text is required: many readers never see the image."""

    src: ImageSource
    alt: Text = Field(max_length=250)
    width: int = Field(default=550, ge=50, le=600)


class Article(_Strict):
    title: Text = Field(max_length=200)
    summary: Markdown
    link: AbsoluteURL
    image: Image | None = None
    cta: Text = Field(default="Read more", max_length=40)


class Section(_Strict):
    title: Text = Field(max_length=120)
    articles: list[Article] = Field(min_length=1)


class Issue(_Strict):
    """One monthly bulletin, as the editor writes it in issues/*.yaml."""

    subject: HeaderText = Field(max_length=150)
    preheader: Text = Field(max_length=200)
    date: dt.date
    language: Language = "en"
    audience: Slug = "everyone"
    template: Slug = "default"
    name_fallback: Text = Field(default="reader", max_length=60)
    intro: Markdown
    sections: list[Section] = Field(min_length=1)
    closing: Markdown

    def articles(self) -> list[Article]:
        return [article for section in self.sections for article in section.articles]
