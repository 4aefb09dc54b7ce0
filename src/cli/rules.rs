//! `egress-webhook rules`: the rule catalogue, so users can see every check we perform.

use crate::core::rules::catalogue::CATALOGUE;

/// One line per rule (`E22  R    ExternalService  each referenced VirtualGateway exists`), or a
/// Markdown table with `markdown`.
pub fn render(markdown: bool) -> String {
    let mut out = String::new();
    if markdown {
        out.push_str("| id | kind | action | rule |\n|---|---|---|---|\n");
    }
    for r in CATALOGUE {
        if markdown {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                r.id, r.kind, r.action, r.summary
            ));
        } else {
            out.push_str(&format!(
                "{:<4} {:<4} {:<16} {}\n",
                r.id, r.action, r.kind, r.summary
            ));
        }
    }
    out
}
