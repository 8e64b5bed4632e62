"""The report as an email: plain text and HTML, totals first, and never larger than REPORT_MAX_BYTES.

The entries a report lists are bounded in number (REPORT_MAX_ENTRIES per kind), but not each in size:
a value may be 1,123 characters, and HTML escaping and the transfer encoding can grow it several
times. So the email is measured as it goes on the wire, and while it is too large it lists half as
many entries; the quarantines left out stay unreported and lead the next email.
"""

from __future__ import annotations

import html
from datetime import datetime
from email import policy
from email.message import EmailMessage

from shared.reports.content import ConflictLine, TenantReport

_RESOLVE = "To resolve a conflict, change the value on premises so that only one object asks for it."


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _holder(line: ConflictLine) -> str:
    return f"{line.holder_display_name or '(no display name)'} ({line.holder_object_id})"


def _breakdown(counts: tuple[tuple[str, int], ...]) -> str:
    return ", ".join(f"{n:,} {name}" for name, n in counts)


def _conflicts_heading(report: TenantReport) -> str:
    return (
        f"{report.conflicts_total:,} new attribute conflict(s) were quarantined "
        f"({_breakdown(report.conflicts_by_property)}). The export succeeded; each object below waits for "
        "the value and receives it automatically once the holder lets go."
    )


def _failures_heading(report: TenantReport) -> str:
    return (
        f"{report.failures_total:,} export(s) are failing ({_breakdown(report.failures_by_code)}) "
        "and are retried on every sync cycle until fixed:"
    )


def _where_all_are(report: TenantReport, page: str) -> str:
    if report.web_report:
        return f"the web report lists them all: {report.web_report}{page}"
    return f"the web report of your syncguard service lists them all (/report/{report.tenant}{page})"


def _conflicts_cut(report: TenantReport) -> str | None:
    left = report.conflicts_total - len(report.conflicts)
    if left <= 0:
        return None
    return (
        f"This email lists the oldest {len(report.conflicts):,}; the other {left:,} come in the next reports, "
        f"and {_where_all_are(report, '')}."
    )


def _failures_cut(report: TenantReport) -> str | None:
    if report.failures_total <= len(report.failures):
        return None
    return f"This email lists the latest {len(report.failures):,}; {_where_all_are(report, '/failures')}."


def render_text(report: TenantReport) -> str:
    out = [f"Directory synchronization error report for tenant {report.tenant}", ""]
    if report.conflicts_total:
        out += [_conflicts_heading(report)]
        out += [cut, ""] if (cut := _conflicts_cut(report)) else [""]
        for c in report.conflicts:
            out += [
                f"- {c.object_type} {c.display_name or '(no display name)'} [{c.source_anchor}]",
                f"    {c.property_name}: {c.value}",
                f"    held by: {_holder(c)}",
                f"    since: {_when(c.occurred)}",
            ]
        out.append("")
    if report.failures_total:
        out += [_failures_heading(report)]
        out += [cut, ""] if (cut := _failures_cut(report)) else [""]
        for f in report.failures:
            out += [
                f"- {f.object_type or 'Unknown'} [{f.source_anchor or 'no source anchor'}] {f.error_code}",
                f"    {f.message}",
                f"    failing since {_when(f.first_failed)}, {f.attempts} attempt(s), last at {_when(f.last_failed)}",
            ]
        out.append("")
    out.append(_RESOLVE)
    if report.web_report:
        out.append(f"Web report: {report.web_report}")
    return "\n".join(out)


def _link(url: str | None) -> str:
    return f' <a href="{html.escape(url)}">{html.escape(url)}</a>' if url else ""


def render_html(report: TenantReport) -> str:
    e = html.escape
    parts = [
        '<!doctype html><html><body style="font-family: sans-serif">',
        f"<h2>Directory synchronization error report for tenant {e(report.tenant)}</h2>",
    ]
    if report.conflicts_total:
        parts.append(f"<h3>{report.conflicts_total:,} new attribute conflict(s) quarantined</h3>")
        parts.append(f"<p>{e(_conflicts_heading(report))}</p>")
        if cut := _conflicts_cut(report):
            parts.append(f"<p><strong>{e(cut)}</strong></p>")
        parts.append(
            '<table border="1" cellpadding="4" cellspacing="0"><tr><th>Object type</th>'
            "<th>Display name</th><th>Property</th><th>Value</th><th>Held by</th><th>Since</th></tr>"
        )
        for c in report.conflicts:
            parts.append(
                f"<tr><td>{e(c.object_type)}</td><td>{e(c.display_name or '')}</td><td>{e(c.property_name)}</td>"
                f"<td>{e(c.value)}</td><td>{e(c.holder_display_name or '')}<br><small>{e(c.holder_object_id)}</small></td>"
                f"<td>{e(_when(c.occurred))}</td></tr>"
            )
        parts.append("</table>")
    if report.failures_total:
        parts.append(f"<h3>{report.failures_total:,} failing export(s)</h3>")
        parts.append(f"<p>{e(_failures_heading(report))}</p>")
        if cut := _failures_cut(report):
            parts.append(f"<p><strong>{e(cut)}</strong></p>")
        parts.append(
            '<table border="1" cellpadding="4" cellspacing="0"><tr><th>Object type</th>'
            "<th>Source anchor</th><th>Error</th><th>Message</th><th>Attempts</th><th>Failing since</th></tr>"
        )
        for f in report.failures:
            parts.append(
                f"<tr><td>{e(f.object_type or '')}</td><td>{e(f.source_anchor or '')}</td><td>{e(f.error_code)}</td>"
                f"<td>{e(f.message)}</td><td>{f.attempts}</td><td>{e(_when(f.first_failed))}</td></tr>"
            )
        parts.append("</table>")
    parts.append(f"<p>{e(_RESOLVE)}</p>")
    if report.web_report:
        parts.append(f"<p>Web report:{_link(report.web_report)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def render_email(report: TenantReport, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = (
        f"[syncguard] {report.tenant}: {report.conflicts_total:,} new conflict(s), "
        f"{report.failures_total:,} failing export(s)"
    )
    message["From"] = sender
    message["To"] = ", ".join(report.recipients)
    message.set_content(render_text(report))
    message.add_alternative(render_html(report), subtype="html")
    return message


def wire_size(message: EmailMessage) -> int:
    """Bytes the message takes in SMTP's DATA (CRLF line ends): what a relay's size limit counts."""
    return len(message.as_bytes(policy=policy.SMTP))


def fit_email(report: TenantReport, sender: str, max_bytes: int) -> tuple[EmailMessage, TenantReport]:
    """The email, and the report it carries: as many entries as fit in `max_bytes`, at least one quarantine.

    Ten halvings at most take 500 entries to one; with the column limits one quarantine and the
    totals take a few tens of kilobytes, far below REPORT_MAX_BYTES' floor of 256 KiB.
    """
    shown = report
    message = render_email(shown, sender)
    while wire_size(message) > max_bytes and (len(shown.conflicts) > 1 or shown.failures):
        shown = shown.first(max(1, len(shown.conflicts) // 2), len(shown.failures) // 2)
        message = render_email(shown, sender)
    return message, shown
