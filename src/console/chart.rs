//! Horizontal bar charts drawn by the server as inline SVG (no script, no image request):
//! one row per bar with its label and its number as text, so the chart reads without
//! colour and a screen reader gets the same figures from the `<title>` and the table
//! next to it.

use maud::{html, Markup};

/// One bar: its label, its value and a CSS class that tints it (`behind`, `never`, or "").
pub struct Bar {
    pub label: String,
    pub value: i64,
    pub class: &'static str,
}

const ROW: i64 = 26;
const LABEL_W: i64 = 130;
const BAR_W: i64 = 360;
const NUM_W: i64 = 80;

/// The SVG of `bars`, titled `title`.
pub fn bars(title: &str, bars: &[Bar]) -> Markup {
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0).max(1);
    let height = ROW * (bars.len() as i64).max(1) + 4;
    let width = LABEL_W + BAR_W + NUM_W;
    html! {
        svg xmlns="http://www.w3.org/2000/svg" role="img" width=(width) height=(height)
            viewBox=(format!("0 0 {width} {height}")) aria-label=(title) {
            title { (title) }
            @if bars.is_empty() {
                text x="0" y="18" { "no tenants" }
            }
            @for (i, b) in bars.iter().enumerate() {
                @let y = i as i64 * ROW + 2;
                // A non-zero value always shows at least a sliver.
                @let w = if b.value > 0 { (b.value * BAR_W / max).max(2) } else { 0 };
                text x=(LABEL_W - 8) y=(y + 17) text-anchor="end" { (b.label) }
                rect class={"bar " (b.class)} x=(LABEL_W) y=(y + 4) width=(w) height=(ROW - 8) rx="2" {
                    title { (b.label) ": " (b.value) }
                }
                text x=(LABEL_W + w + 6) y=(y + 17) { (b.value) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_every_bar_has_its_number_as_text() {
        let svg = bars(
            "by status",
            &[
                Bar {
                    label: "<active>".into(),
                    value: 10,
                    class: "",
                },
                Bar {
                    label: "suspended".into(),
                    value: 0,
                    class: "behind",
                },
            ],
        )
        .into_string();
        assert!(svg.contains("&lt;active&gt;"));
        assert!(!svg.contains("<active>"));
        assert!(svg.contains(">10</text>") && svg.contains(">0</text>"));
        assert!(
            svg.contains("width=\"360\""),
            "the largest bar is full width"
        );
    }
}
