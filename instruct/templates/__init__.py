"""Labeled datasets -> instruction pairs through Jinja templates (promptsource-compatible).

    from instruct.templates import load_templates
    for template in load_templates("templates/sentiment.yaml"):
        prompt, target = template.apply({"text": "A fine film.", "label": 1})
"""
from instruct.templates.loader import library_names, load_templates
from instruct.templates.render import Template, TemplateError, TemplateMetadata

__all__ = ["Template", "TemplateError", "TemplateMetadata", "library_names", "load_templates"]
