"""The report as one self-contained German HTML page with PNG charts (matplotlib) inline."""

from __future__ import annotations

import base64
import io
from datetime import date, datetime
from html import escape
from typing import List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend first)
from matplotlib.ticker import MaxNLocator, PercentFormatter  # noqa: E402

from revierlotse.report.figures import LOW_CONFIDENCE, NOT_UNDERSTOOD, OUT_OF_SCOPE, ReportData  # noqa: E402

BLUE, ORANGE, RED, GREY = "#1f5f8b", "#e08a1e", "#c0392b", "#7f8c8d"
REASON_LABELS = {
    NOT_UNDERSTOOD: "nicht verstanden",
    LOW_CONFIDENCE: "unsicher erkannt",
    OUT_OF_SCOPE: "außerhalb des Themas",
}
MAX_TOPICS_IN_CHART = 10
MAX_GROUPS_IN_TABLE = 100  # the rest is in report.json
MAX_UNHELPFUL_IN_TABLE = 100


def _number(value: float, digits: int = 1) -> str:
    text = f"{value:,.{digits}f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def _percent(rate: float) -> str:
    return f"{_number(rate * 100)} %"


def _day(iso: str) -> str:
    return date.fromisoformat(iso).strftime("%d.%m.%Y")


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _day_axis(ax, data: ReportData) -> List[int]:
    positions = list(range(len(data.days)))
    labels = [date.fromisoformat(d.day).strftime("%d.%m.") for d in data.days]
    step = max(1, len(labels) // 15)
    ax.set_xticks(positions[::step])
    ax.set_xticklabels(labels[::step], rotation=45 if len(labels) > 7 else 0, ha="right" if len(labels) > 7 else "center")
    ax.spines[["top", "right"]].set_visible(False)
    return positions


def _legend_above(ax) -> None:
    ax.legend(frameon=False, loc="lower left", bbox_to_anchor=(0, 1.02), ncol=2)


def chart_activity(data: ReportData) -> str:
    fig, ax = plt.subplots(figsize=(8, 3.2))
    x = _day_axis(ax, data)
    ax.bar(x, [d.conversations for d in data.days], color=BLUE, label="Gespräche")
    ax.plot(x, [d.user_messages for d in data.days], color=ORANGE, marker="o", label="Nachrichten von Nutzern")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(bottom=0)
    _legend_above(ax)
    return _png(fig)


def chart_unanswered_rate(data: ReportData) -> str:
    fig, ax = plt.subplots(figsize=(8, 3.2))
    x = _day_axis(ax, data)
    not_understood = [d.not_understood_rate for d in data.days]
    ax.bar(x, not_understood, color=RED, label="nicht verstanden")
    ax.bar(x, [d.out_of_scope_rate for d in data.days], bottom=not_understood, color=GREY, label="außerhalb des Themas")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylim(0, 1)
    _legend_above(ax)
    return _png(fig)


def _chart_bars(labels: List[str], counts: List[int], shares: List[float], color: str) -> str:
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 0.8))
    y = list(range(len(labels)))[::-1]
    ax.barh(y, counts, color=color)
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    for yi, count, share in zip(y, counts, shares):
        ax.text(count, yi, f"  {count} ({_percent(share)})", va="center")
    ax.set_xlim(0, max(counts) * 1.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def chart_channels(data: ReportData) -> str:
    return _chart_bars([s.label for s in data.channels], [s.count for s in data.channels],
                       [s.share for s in data.channels], BLUE)


def chart_topics(data: ReportData) -> str:
    top = data.topics[:MAX_TOPICS_IN_CHART]
    return _chart_bars([s.label for s in top], [s.count for s in top], [s.share for s in top], ORANGE)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f4f6f8;color:#1d2a33}
main{max-width:980px;margin:0 auto;padding:24px}
h1{margin:0 0 4px;font-size:1.6rem} h2{margin:32px 0 8px;font-size:1.2rem}
.sub{color:#5b6b76;margin:0 0 20px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(120px,1fr));gap:12px}
.card{background:#fff;border-radius:8px;padding:12px 14px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
.card b{display:block;font-size:1.35rem;color:#1f5f8b;white-space:nowrap}.card span{color:#5b6b76;font-size:.85rem}
section{background:#fff;border-radius:8px;padding:4px 18px 16px;margin-top:16px;box-shadow:0 1px 2px rgba(0,0,0,.08)}
img{max-width:100%;height:auto}
table{border-collapse:collapse;width:100%;font-size:.92rem}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e3e8ec;vertical-align:top}
td.n,th.n{text-align:right;white-space:nowrap}
.variants{color:#5b6b76;font-size:.85rem;margin-top:2px}
details summary{cursor:pointer;color:#1f5f8b;margin-top:8px}
footer{color:#5b6b76;font-size:.8rem;margin-top:24px}
"""


def _card(value: str, label: str) -> str:
    return f'<div class="card"><b>{escape(value)}</b><span>{escape(label)}</span></div>'


def _img(png: str, alt: str) -> str:
    return f'<img src="data:image/png;base64,{png}" alt="{escape(alt)}">'


def _unanswered_table(data: ReportData) -> str:
    if not data.unanswered:
        return "<p>Keine – jede Frage im Zeitraum wurde einem Thema zugeordnet.</p>"
    rows = []
    for group in data.unanswered[:MAX_GROUPS_IN_TABLE]:
        variants = "".join(
            f"<div class=\"variants\">auch: „{escape(text)}“ ({count}×)</div>" for text, count in group.variants
        )
        reasons = ", ".join(f"{REASON_LABELS.get(r, r)} {n}×" for r, n in group.reasons.items())
        rows.append(
            f'<tr><td class="n">{group.count}</td><td>„{escape(group.text)}“{variants}</td>'
            f"<td>{escape(reasons)}</td></tr>"
        )
    more = len(data.unanswered) - MAX_GROUPS_IN_TABLE
    note = f'<p class="variants">… und {more} weitere Gruppen (alle in report.json).</p>' if more > 0 else ""
    return (
        '<table><thead><tr><th class="n">Anzahl</th><th>Frage (ähnliche zusammengefasst)</th>'
        f"<th>Grund</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{note}"
    )


def _satisfaction_table(data: ReportData) -> str:
    if not data.satisfaction:
        return "<p>Im Zeitraum hat niemand eine Antwort bewertet.</p>"
    rows = "".join(
        f'<tr><td>{escape(t.label)}</td><td class="n">{t.helpful}</td><td class="n">{t.unhelpful}</td>'
        f'<td class="n">{_percent(t.helpful_rate)}</td></tr>'
        for t in data.satisfaction
    )
    return (
        '<table><thead><tr><th>Thema</th><th class="n">👍 hilfreich</th><th class="n">👎 nicht hilfreich</th>'
        f'<th class="n">Zufriedenheit</th></tr></thead><tbody>{rows}</tbody></table>'
    )


def _unhelpful_table(data: ReportData) -> str:
    if not data.unhelpful_answers:
        return "<p>Keine – im Zeitraum wurde keine Antwort als nicht hilfreich bewertet.</p>"
    rows = []
    for answer in data.unhelpful_answers[:MAX_UNHELPFUL_IN_TABLE]:
        facts = f'<div class="variants">gezeigt: {escape(", ".join(answer.facts))}</div>' if answer.facts else ""
        comment = f"„{escape(answer.comment)}“" if answer.comment else "–"
        rows.append(
            f"<tr><td>{_day(answer.day)}</td><td>{escape(answer.label)}</td>"
            f"<td>„{escape(answer.question)}“{facts}</td><td>{comment}</td></tr>"
        )
    more = len(data.unhelpful_answers) - MAX_UNHELPFUL_IN_TABLE
    note = f'<p class="variants">… und {more} weitere (alle in report.json).</p>' if more > 0 else ""
    return (
        "<table><thead><tr><th>Tag</th><th>Thema</th><th>Frage und gezeigte Fakten</th>"
        f"<th>Was gefehlt hat</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{note}"
    )


def _day_table(data: ReportData) -> str:
    rows = "".join(
        f'<tr><td>{_day(d.day)}</td><td class="n">{d.conversations}</td><td class="n">{d.user_messages}</td>'
        f'<td class="n">{d.bot_messages}</td><td class="n">{_percent(d.not_understood_rate)}</td>'
        f'<td class="n">{_percent(d.out_of_scope_rate)}</td></tr>'
        for d in data.days
    )
    return (
        '<details><summary>Zahlen pro Tag als Tabelle</summary><table><thead><tr><th>Tag</th>'
        '<th class="n">Gespräche</th><th class="n">Nachrichten Nutzer</th><th class="n">Antworten Bot</th>'
        '<th class="n">nicht verstanden</th><th class="n">außerhalb</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></details>"
    )


def render_html(data: ReportData, generated_at: datetime) -> str:
    """The complete report page (German), charts embedded as PNG data URIs."""
    period = f"{_day(data.first_day)} bis {_day(data.last_day)}"
    cards = "".join([
        _card(str(data.conversations), "Gespräche"),
        _card(str(data.user_messages), "Nachrichten von Nutzern"),
        _card(_number(data.avg_user_messages), "Ø Nachrichten pro Gespräch"),
        _card(f"{_number(data.avg_duration_minutes)} min", "Ø Dauer eines Gesprächs"),
        _card(_percent(data.not_understood_rate), "nicht verstanden"),
        _card(_percent(data.out_of_scope_rate), "außerhalb des Themas"),
        _card(_percent(data.helpful_rate) if data.satisfaction else "–", "Antworten hilfreich bewertet"),
    ])
    topics = (
        _img(chart_topics(data), "Häufigste Themen")
        + '<p class="variants">Anteil an allen Fragen zu Themen der Wissensbasis (Buttons mitgezählt).</p>'
        if data.topics else "<p>Im Zeitraum wurde nach keinem Thema der Wissensbasis gefragt.</p>"
    )
    threshold = _percent(data.fallback_threshold).replace(",0 %", " %")
    return f"""<!DOCTYPE html>
<html lang="de"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Revierlotse – Betriebsbericht {escape(period)}</title>
<style>{_CSS}</style></head>
<body><main>
<h1>Revierlotse – Betriebsbericht</h1>
<p class="sub">Zeitraum: {escape(period)} (Zeitzone {escape(data.timezone)})</p>
<div class="cards">{cards}</div>

<section><h2>Gespräche und Nachrichten pro Tag</h2>
{_img(chart_activity(data), "Gespräche und Nachrichten pro Tag")}
{_day_table(data)}</section>

<section><h2>Anteil der Gespräche je Kanal</h2>
{_img(chart_channels(data), "Anteil je Kanal")}
<p class="variants">Web = Chat-Widget auf der Website, Shell/REST = REST-Schnittstelle und Terminal.</p></section>

<section><h2>Häufigste Themen</h2>
{topics}</section>

<section><h2>Nicht beantwortete Fragen pro Tag</h2>
{_img(chart_unanswered_rate(data), "Anteil nicht beantworteter Fragen pro Tag")}
<p class="variants">Anteil der Nachrichten von Nutzern: „nicht verstanden“ heißt Fallback oder
Erkennung unter {escape(threshold)} Sicherheit, „außerhalb des Themas“ heißt, die Frage gehört nicht
zum Beruf IT Manager in Duisburg.</p></section>

<section><h2>Fragen, die der Bot nicht beantworten konnte</h2>
<p class="variants">Ähnliche Fragen sind zusammengefasst. Hier lohnt es sich, die Wissensbasis
oder die Trainingsdaten zu ergänzen.</p>
{_unanswered_table(data)}</section>

<section><h2>Bewertungen der Antworten</h2>
<p class="variants">👍/👎 unter den Antworten; Zufriedenheit ist der Anteil der 👍 an allen
Bewertungen eines Themas.</p>
{_satisfaction_table(data)}
<h2>Als nicht hilfreich bewertete Antworten</h2>
<p class="variants">Neueste zuerst, mit der Frage, auf die geantwortet wurde, den gezeigten
Fakten (Einträge der Wissensbasis) und dem, was laut Nutzer gefehlt hat.</p>
{_unhelpful_table(data)}</section>

<footer>Erstellt am {generated_at.strftime("%d.%m.%Y um %H:%M")} Uhr aus dem Tracker Store.
Der Bericht enthält keine Absender-IDs; E-Mail-Adressen, Telefonnummern, Links und lange
Nummern in Nutzertexten sind unkenntlich gemacht.</footer>
</main></body></html>
"""
