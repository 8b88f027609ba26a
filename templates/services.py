"""Writes for email templates: every save is validated first and recorded as a version."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from mailplatform.services import acting_user, audit_record
from templates.compiler import CompiledTemplate, TemplateError, compile_template
from templates.models import EmailTemplate, SourceFormat, TemplateVersion

EDITABLE_FIELDS = (
    "name",
    "subject",
    "preheader",
    "html",
    "source_format",
    "text",
    "layout",
    "transactional",
    "attachments",
)


def _layout_html(layout: EmailTemplate | None, template: EmailTemplate | None = None) -> str | None:
    if layout is None:
        return None
    if layout.kind != EmailTemplate.Kind.LAYOUT:
        raise TemplateError(f"'{layout.name}' is not a base layout", part="layout")
    if template is not None and template.pk == layout.pk:
        raise TemplateError("a layout cannot extend itself", part="layout")
    return layout.html


def _compile_fields(
    kind: str, fields: dict[str, Any], *, template: EmailTemplate | None = None
) -> CompiledTemplate:
    if not fields["name"].strip():
        raise TemplateError("a name is required", part="name")
    if kind == EmailTemplate.Kind.LAYOUT:
        if fields.get("layout") is not None:
            raise TemplateError("a base layout cannot extend another layout", part="layout")
        # A layout is checked the way it will be used: with a body in its {{ content }}.
        if fields.get("source_format", SourceFormat.HTML) != SourceFormat.HTML:
            raise TemplateError("a base layout is written in HTML", part="html")
        return compile_template(
            subject=fields["subject"] or fields["name"],
            html="<p>content</p>",
            preheader=fields["preheader"],
            layout_html=fields["html"],
        )
    return compile_template(
        subject=fields["subject"],
        html=fields["html"],
        text=fields["text"] or None,
        preheader=fields["preheader"],
        layout_html=_layout_html(fields.get("layout"), template),
        source_format=fields.get("source_format") or SourceFormat.HTML,
        attachments=fields.get("attachments") or (),
    )


def _record_version(
    template: EmailTemplate, compiled: CompiledTemplate, *, by: Any, note: str
) -> TemplateVersion:
    last = template.versions.order_by("-number").values_list("number", flat=True).first() or 0
    version = TemplateVersion.objects.create(
        template=template,
        number=last + 1,
        name=template.name,
        subject=template.subject,
        preheader=template.preheader,
        html=template.html,
        source_format=template.source_format,
        text=template.text,
        attachments=template.attachments,
        layout=template.layout,
        transactional=template.transactional,
        note=note[:300],
        uses_logic=compiled.uses_logic,
        created_by=acting_user(by),
    )
    template.current_version = version
    template.save(update_fields=["current_version", "updated_at"])
    return version


def template_create(
    *,
    name: str,
    subject: str = "",
    html: str,
    text: str = "",
    preheader: str = "",
    layout: EmailTemplate | None = None,
    kind: str = EmailTemplate.Kind.TEMPLATE,
    transactional: bool = False,
    source_format: str = SourceFormat.HTML,
    attachments: list[dict[str, Any]] | None = None,
    starter: str = "",
    by: Any = None,
    note: str = "Created",
) -> EmailTemplate:
    """Create a template with its first version; raises TemplateError and stores nothing when invalid."""
    if kind not in EmailTemplate.Kind.values:
        raise TemplateError(f"kind must be one of {', '.join(EmailTemplate.Kind.values)}", part="kind")
    fields = {
        "name": name,
        "subject": subject,
        "html": html,
        "text": text,
        "preheader": preheader,
        "layout": layout,
        "source_format": source_format,
        "attachments": attachments or [],
    }
    if source_format not in SourceFormat.values:
        raise TemplateError(f"source format must be one of {', '.join(SourceFormat.values)}", part="html")
    compiled = _compile_fields(kind, fields)
    with transaction.atomic():
        template = EmailTemplate.objects.create(
            name=name.strip()[:200],
            kind=kind,
            subject=subject.strip(),
            preheader=preheader.strip(),
            html=html,
            source_format=source_format,
            text=text,
            attachments=attachments or [],
            layout=layout,
            transactional=transactional,
            starter=starter,
            created_by=acting_user(by),
        )
        version = _record_version(template, compiled, by=by, note=note)
        audit_record(by, "template.created", template, details={"version": version.number, "kind": kind})
    return template


def template_update(template_id: int, *, by: Any = None, note: str = "", **changes: Any) -> EmailTemplate:
    """Save changes as a new version; raises TemplateError and changes nothing when invalid.

    Saving content identical to the current version records no new version.
    """
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"cannot change {', '.join(sorted(unknown))}")
    with transaction.atomic():
        template = EmailTemplate.objects.select_for_update().get(pk=template_id)
        fields = {name: getattr(template, name) for name in EDITABLE_FIELDS}
        fields.update(changes)
        for name in ("name", "subject", "preheader"):
            fields[name] = (fields[name] or "").strip()
        if fields["source_format"] not in SourceFormat.values:
            raise TemplateError(f"source format must be one of {', '.join(SourceFormat.values)}", part="html")
        compiled = _compile_fields(template.kind, fields, template=template)
        changed = [name for name in EDITABLE_FIELDS if getattr(template, name) != fields[name]]
        if not changed and template.current_version_id is not None:
            return template
        for name, value in fields.items():
            setattr(template, name, value)
        template.save()
        version = _record_version(template, compiled, by=by, note=note or "Saved")
        audit_record(
            by, "template.updated", template, details={"version": version.number, "changed": changed}
        )
    return template


def template_restore(template_id: int, version_id: int, *, by: Any = None) -> EmailTemplate:
    """Make an old version current again, as a new version (history is never rewritten)."""
    version = TemplateVersion.objects.get(pk=version_id, template_id=template_id)
    template = template_update(
        template_id,
        by=by,
        note=f"Restored version {version.number}",
        name=version.name,
        subject=version.subject,
        preheader=version.preheader,
        html=version.html,
        source_format=version.source_format,
        text=version.text,
        attachments=version.attachments,
        layout=version.layout,
        transactional=version.transactional,
    )
    audit_record(by, "template.restored", template, details={"from_version": version.number})
    return template


def template_set_archived(template_id: int, archived: bool, *, by: Any = None) -> EmailTemplate:
    with transaction.atomic():
        template = EmailTemplate.objects.select_for_update().get(pk=template_id)
        template.archived = archived
        template.save(update_fields=["archived", "updated_at"])
        audit_record(by, "template.archived" if archived else "template.unarchived", template)
    return template


def template_duplicate(template_id: int, *, by: Any = None) -> EmailTemplate:
    source = EmailTemplate.objects.get(pk=template_id)
    return template_create(
        name=f"{source.name} (copy)"[:200],
        subject=source.subject,
        html=source.html,
        source_format=source.source_format,
        text=source.text,
        attachments=source.attachments,
        preheader=source.preheader,
        layout=source.layout,
        kind=source.kind,
        transactional=source.transactional,
        by=by,
        note=f"Copied from {source.name}",
    )


def template_compile(template_id: int, version_id: int | None = None) -> CompiledTemplate:
    """Compile the template's current saved content, or the given version of it.

    A layout it extends is used as currently saved: the mailing snapshot freezes the result.
    """
    template = EmailTemplate.objects.select_related("layout").get(pk=template_id)
    if version_id is None:
        source: EmailTemplate | TemplateVersion = template
    else:
        source = TemplateVersion.objects.select_related("layout").get(pk=version_id, template_id=template_id)
    fields = {name: getattr(source, name) for name in EDITABLE_FIELDS}
    return _compile_fields(template.kind, fields, template=template)


# --- attachments ---

# Executables and scripts: mail providers refuse messages that carry them, and so do we.
REFUSED_EXTENSIONS = frozenset(
    "exe com bat cmd scr pif msi msp jar js jse vbs vbe wsf wsh hta ps1 psm1 lnk reg cpl dll iso".split()
)


def _attachment_filename(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch.isprintable() and ch not in '"<>:|?*').strip(" .")[:120]
    if not cleaned:
        raise TemplateError("the file needs a name", part="attachments")
    extension = cleaned.rsplit(".", 1)[-1].lower() if "." in cleaned else ""
    if extension in REFUSED_EXTENSIONS:
        raise TemplateError(
            f".{extension} files cannot be attached: mail providers refuse messages carrying programs or scripts",
            part="attachments",
        )
    return cleaned


def template_attach(template_id: int, *, data: bytes, filename: str, by: Any = None) -> EmailTemplate:
    """Attach a file to a template (a new version); TemplateError, and nothing stored, when refused.

    The bytes are stored once, content-addressed, in media storage; the template and its
    versions keep only the metadata, so a mailing's snapshot names exactly these bytes.
    """
    import mimetypes

    from django.conf import settings

    from media.storage import store_bytes

    name = _attachment_filename(filename)
    if not data:
        raise TemplateError(f"{name} is empty", part="attachments")
    template = EmailTemplate.objects.get(pk=template_id)
    if template.kind == EmailTemplate.Kind.LAYOUT:
        raise TemplateError("base layouts carry no attachments", part="attachments")
    current = list(template.attachments or [])
    total = sum(int(a["size"]) for a in current) + len(data)
    limit = settings.TEMPLATE_ATTACHMENTS_MAX_BYTES
    if total > limit:  # checked before storing anything
        raise TemplateError(
            f"{name} would make the attachments {total / 1048576:.1f} MB; a message may carry at most "
            f"{limit / 1048576:.1f} MB of attachments",
            part="attachments",
        )
    storage_name, digest = store_bytes("attachments", data, name)
    meta = {
        "filename": name,
        "content_type": mimetypes.guess_type(name)[0] or "application/octet-stream",
        "size": len(data),
        "sha256": digest,
        "storage_name": storage_name,
    }
    kept = [a for a in current if not (a["sha256"] == digest and a["filename"] == name)]
    return template_update(template_id, by=by, note=f"Attached {name}", attachments=[*kept, meta])


def template_detach(template_id: int, *, index: int, by: Any = None) -> EmailTemplate:
    """Remove the attachment at `index` (a new version; the stored file stays for older versions)."""
    template = EmailTemplate.objects.get(pk=template_id)
    current = list(template.attachments or [])
    if not 0 <= index < len(current):
        raise TemplateError("no such attachment", part="attachments")
    removed = current.pop(index)
    return template_update(template_id, by=by, note=f"Removed {removed['filename']}", attachments=current)
