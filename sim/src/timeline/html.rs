//! Renders a [`Timeline`] as one self-contained HTML page: the timeline's data as JSON in the page, and a
//! small script that draws it (lanes, marks, a time axis, zoom, the anomalies with their records, and
//! every event in time order). The page loads nothing from the network.

use super::Timeline;

const STYLE: &str = r#"
body { font: 13px/1.4 system-ui, sans-serif; margin: 16px; color: #1d232b; background: #fff; }
h1 { font-size: 18px; margin: 0 0 4px; }
h2 { font-size: 15px; margin: 20px 0 6px; }
.summary { color: #4a5563; margin-bottom: 10px; }
.controls { margin: 6px 0 10px; }
.legend span { display: inline-block; margin-right: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: middle; }
#scroll { overflow-x: auto; border: 1px solid #d5dae1; }
#lanes { position: relative; min-width: 100%; }
.lane { display: flex; border-bottom: 1px solid #eef0f3; height: 26px; }
.lane .label { position: sticky; left: 0; z-index: 2; flex: 0 0 210px; background: #f7f8fa;
  border-right: 1px solid #d5dae1; padding: 4px 6px; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; font-family: ui-monospace, monospace; font-size: 12px; }
.lane .track { position: relative; flex: 1 1 auto; margin-right: 24px; }
.axis { height: 20px; }
.axis .tick { position: absolute; top: 2px; font-size: 11px; color: #6b7483; border-left: 1px solid #c5cbd3;
  padding-left: 2px; height: 16px; }
.mark { position: absolute; top: 5px; height: 16px; min-width: 3px; border-radius: 2px; cursor: pointer;
  opacity: 0.85; font-size: 10px; line-height: 16px; color: #fff; white-space: nowrap; overflow: hidden; }
.mark:hover, .mark.selected { opacity: 1; outline: 2px solid #1d232b; z-index: 3; }
.kind-fault { background: #d1495b; } .kind-recovery { background: #66a182; }
.kind-lifecycle { background: #8d6cab; } .kind-rebalance { background: #edae49; }
.kind-generation { background: #00798c; } .kind-commit { background: #30638e; }
.kind-flush { background: #9aa5b1; top: 17px; height: 6px; } .kind-cluster { background: #6b7483; }
.kind-anomaly { background: #000; }
.lane-kind-oracle .label { background: #fde8ea; }
#detail { margin-top: 8px; min-height: 2.8em; padding: 6px 8px; background: #f7f8fa; border: 1px solid #d5dae1;
  font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap; }
.anomaly { margin-bottom: 8px; }
.anomaly .kind { font-weight: 600; color: #b3202f; }
.anomaly ul { margin: 2px 0 0; }
.record { font-family: ui-monospace, monospace; }
table { border-collapse: collapse; font-size: 12px; }
td, th { border-bottom: 1px solid #eef0f3; padding: 2px 8px; text-align: left; vertical-align: top; }
td.at { text-align: right; font-family: ui-monospace, monospace; }
"#;

const SCRIPT: &str = r#"
(function () {
  const data = JSON.parse(document.getElementById('timeline-data').textContent);
  const end = Math.max(data.end_ms, 1);
  const lanes = document.getElementById('lanes');
  const detail = document.getElementById('detail');
  const el = (tag, attrs, text) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const seconds = (ms) => (ms / 1000).toFixed(3) + ' s';
  let selected = null;
  const select = (node, mark, lane) => {
    if (selected) selected.classList.remove('selected');
    selected = node;
    node.classList.add('selected');
    const until = mark.until_ms !== undefined ? ' to ' + seconds(mark.until_ms) : '';
    detail.textContent = seconds(mark.at_ms) + until + ' on ' + lane + ': ' + mark.detail;
  };

  const axis = el('div', { class: 'lane axis' });
  axis.appendChild(el('div', { class: 'label' }, 'simulated time'));
  const ticks = el('div', { class: 'track' });
  const step = [1000, 2000, 5000, 10000, 20000, 30000, 60000].find((s) => end / s <= 12) || 120000;
  for (let t = 0; t <= end; t += step) {
    const tick = el('div', { class: 'tick' }, (t / 1000) + ' s');
    tick.style.left = (100 * t / end) + '%';
    ticks.appendChild(tick);
  }
  axis.appendChild(ticks);
  lanes.appendChild(axis);

  for (const lane of data.lanes) {
    const row = el('div', { class: 'lane lane-kind-' + lane.kind, 'data-lane': lane.name, 'data-kind': lane.kind });
    row.appendChild(el('div', { class: 'label', title: lane.name }, lane.name));
    const track = el('div', { class: 'track' });
    for (const mark of lane.marks) {
      const node = el('div', {
        class: 'mark kind-' + mark.kind,
        title: seconds(mark.at_ms) + ': ' + mark.detail,
        'data-at': mark.at_ms,
      });
      node.style.left = (100 * mark.at_ms / end) + '%';
      if (mark.until_ms !== undefined) {
        node.style.width = Math.max(100 * (mark.until_ms - mark.at_ms) / end, 0.2) + '%';
        node.textContent = mark.label;
      } else if (mark.kind === 'fault' || mark.kind === 'anomaly' || mark.kind === 'generation') {
        node.textContent = mark.label;
      }
      node.addEventListener('click', () => select(node, mark, lane.name));
      track.appendChild(node);
    }
    row.appendChild(track);
    lanes.appendChild(row);
  }

  const zoom = document.getElementById('zoom');
  const applyZoom = () => { lanes.style.width = (100 * Number(zoom.value)) + '%'; };
  zoom.addEventListener('input', applyZoom);
  applyZoom();

  const anomalies = document.getElementById('anomaly-list');
  if (data.anomalies.length === 0) {
    anomalies.appendChild(el('li', { class: 'none' }, 'The oracle found no anomaly.'));
  }
  for (const anomaly of data.anomalies) {
    const item = el('li', { class: 'anomaly', 'data-kind': anomaly.kind });
    item.appendChild(el('span', { class: 'kind' }, anomaly.kind));
    item.appendChild(document.createTextNode(': ' + anomaly.detail));
    if (anomaly.records.length > 0) {
      const records = el('ul', { class: 'records' });
      for (const record of anomaly.records) {
        records.appendChild(el('li', { class: 'record', 'data-record': record }, record));
      }
      item.appendChild(el('div', {}, 'Records involved:'));
      item.appendChild(records);
    }
    if (anomaly.writes.length > 0) {
      const writes = el('ul', { class: 'writes' });
      for (const write of anomaly.writes) writes.appendChild(el('li', { class: 'record' }, write));
      item.appendChild(el('div', {}, 'Their writes to the destination:'));
      item.appendChild(writes);
    }
    anomalies.appendChild(item);
  }

  const events = [];
  for (const lane of data.lanes) for (const mark of lane.marks) events.push([mark, lane.name]);
  events.sort((a, b) => a[0].at_ms - b[0].at_ms);
  const body = document.getElementById('event-rows');
  for (const [mark, lane] of events) {
    const row = el('tr', { class: 'event kind-row-' + mark.kind });
    row.appendChild(el('td', { class: 'at' }, (mark.at_ms / 1000).toFixed(3)));
    row.appendChild(el('td', {}, lane));
    row.appendChild(el('td', {}, mark.kind));
    row.appendChild(el('td', {}, mark.detail));
    body.appendChild(row);
  }
  document.body.setAttribute('data-rendered', String(data.lanes.length));
})();
"#;

/// The page for `timeline`.
pub fn render(timeline: &Timeline) -> String {
    let data = serde_json::to_string(timeline)
        .unwrap_or_else(|e| format!(r#"{{"error":"the timeline could not be encoded: {e}"}}"#))
        // In a <script> element, `</script>` or `<!--` in a string would end or confuse it; JSON reads
        // `\u003c` as `<`.
        .replace('<', "\\u003c");
    let title = escape(&format!(
        "Sluice timeline: {} seed {}",
        timeline.scenario, timeline.seed
    ));
    let marks: usize = timeline.lanes.iter().map(|lane| lane.marks.len()).sum();
    let summary = escape(&format!(
        "{} lanes, {marks} events, {} anomalies over {:.3} simulated seconds. Click a mark for its account.",
        timeline.lanes.len(),
        timeline.anomalies.len(),
        timeline.end_ms as f64 / 1000.0
    ));
    let legend: String = [
        "fault",
        "recovery",
        "lifecycle",
        "rebalance",
        "generation",
        "commit",
        "flush",
        "cluster",
        "anomaly",
    ]
    .iter()
    .map(|kind| format!(r#"<span><i class="kind-{kind}"></i>{kind}</span>"#))
    .collect();
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{title}</h1>
<div class="summary">{summary}</div>
<noscript>This page draws the timeline with a script; its data is in the element timeline-data.</noscript>
<div class="controls">Zoom <input id="zoom" type="range" min="1" max="20" step="1" value="1">
<span class="legend">{legend}</span></div>
<div id="scroll"><div id="lanes"></div></div>
<div id="detail">Click a mark.</div>
<h2>Anomalies</h2>
<ul id="anomaly-list"></ul>
<h2>Events</h2>
<table><thead><tr><th>s</th><th>lane</th><th>kind</th><th>what happened</th></tr></thead>
<tbody id="event-rows"></tbody></table>
<script id="timeline-data" type="application/json">{data}</script>
<script>{SCRIPT}</script>
</body>
</html>
"#
    )
}

/// Text for HTML element content.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{LaneKind, MarkKind, TimelineBuilder};
    use std::time::Duration;

    #[test]
    fn a_detail_cannot_end_the_data_script() {
        let mut builder = TimelineBuilder::default();
        builder.mark(
            (LaneKind::Worker, "worker-0"),
            Duration::from_millis(5),
            MarkKind::Lifecycle,
            "failed",
            "worker-0 failed: </script><script>alert(1)</script>",
        );
        let page = render(&builder.finish("<scenario>", 7, Duration::from_secs(1), &[], &[]));
        assert_eq!(page.matches("</script>").count(), 2, "{page}");
        assert!(page.contains("\\u003c/script>\\u003cscript>alert(1)"));
        assert!(page.contains("<title>Sluice timeline: &lt;scenario&gt; seed 7</title>"));
        assert!(!page.contains("http://") && !page.contains("https://"));
    }
}
