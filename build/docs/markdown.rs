//! The spec's descriptions as HTML: CommonMark rendered at build time, so the page needs no
//! script or CDN to show `code`, lists and links.

use pulldown_cmark::{html, Event, Parser};

/// `text` (CommonMark) as HTML. Raw HTML in the text is shown as text, not passed through:
/// a description cannot inject markup into the page.
pub(crate) fn to_html(text: &str) -> String {
    let events = Parser::new(text).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}
