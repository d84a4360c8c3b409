//! The emails' text: a plain-text and an HTML template per event type, with `{{name}}`
//! placeholders.
//!
//! Solves: built-in templates (`http/templates/notify/`, compiled in) that a directory setting can
//! replace file by file; every placeholder checked when the templates load, so a typo stops the
//! start instead of every email; values HTML-escaped in the HTML part.
//!
//! Deliberately does not: loops, conditionals or logic of any kind (the order lines arrive as one
//! pre-rendered `{{lines}}` block, a list in text and table rows in HTML). A template engine
//! crate would add a language to learn and a dependency for eight small files.
//!
//! `<type>.txt` starts with a `Subject: …` line and a blank line; the rest is the text body.
//! A type with no `.txt` (neither built in nor in the directory) gets no email; `.html` is
//! optional beside it.

use std::collections::HashMap;
use std::path::Path;

use super::event::{Event, KNOWN_TYPES};

/// Every placeholder a template may use.
pub const PLACEHOLDERS: [&str; 11] = [
    "order_id",
    "event_id",
    "event_type",
    "customer",
    "status",
    "total",
    "currency",
    "created_at",
    "updated_at",
    "occurred_at",
    "lines",
];

/// The templates compiled in: (file name, text).
const BUILT_IN: [(&str, &str); 8] = [
    (
        "order.created.txt",
        include_str!("../../templates/notify/order.created.txt"),
    ),
    (
        "order.created.html",
        include_str!("../../templates/notify/order.created.html"),
    ),
    (
        "order.shipped.txt",
        include_str!("../../templates/notify/order.shipped.txt"),
    ),
    (
        "order.shipped.html",
        include_str!("../../templates/notify/order.shipped.html"),
    ),
    (
        "order.delivered.txt",
        include_str!("../../templates/notify/order.delivered.txt"),
    ),
    (
        "order.delivered.html",
        include_str!("../../templates/notify/order.delivered.html"),
    ),
    (
        "order.cancelled.txt",
        include_str!("../../templates/notify/order.cancelled.txt"),
    ),
    (
        "order.cancelled.html",
        include_str!("../../templates/notify/order.cancelled.html"),
    ),
];

/// One event type's email.
#[derive(Debug, Clone)]
struct Template {
    subject: String,
    text: String,
    html: Option<String>,
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Templates {
    by_type: HashMap<&'static str, Template>,
}

impl Templates {
    /// The built-in templates, each replaced by the directory's file of the same name if any.
    pub fn load(dir: Option<&Path>) -> Result<Self, String> {
        let read = |name: &str| -> Result<Option<String>, String> {
            if let Some(dir) = dir {
                let path = dir.join(name);
                match std::fs::read_to_string(&path) {
                    Ok(text) => return Ok(Some(text)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("template {}: {e}", path.display())),
                }
            }
            Ok(BUILT_IN
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| (*t).to_owned()))
        };
        let mut by_type = HashMap::new();
        for kind in KNOWN_TYPES {
            let Some(text) = read(&format!("{kind}.txt"))? else {
                continue;
            };
            let (subject, body) = split_subject(&text).ok_or_else(|| {
                format!("template {kind}.txt must start with a \"Subject: \" line")
            })?;
            let html = read(&format!("{kind}.html"))?;
            for (file, t) in [
                (format!("{kind}.txt"), Some(text.as_str())),
                (format!("{kind}.html"), html.as_deref()),
            ] {
                if let Some(bad) = t.and_then(unknown_placeholder) {
                    return Err(format!(
                        "template {file}: unknown placeholder {{{{{bad}}}}} (known: {})",
                        PLACEHOLDERS.join(", ")
                    ));
                }
            }
            by_type.insert(
                kind,
                Template {
                    subject: subject.to_owned(),
                    text: body.to_owned(),
                    html,
                },
            );
        }
        Ok(Self { by_type })
    }

    /// The email for this event, or `None` when its type has no template.
    pub fn render(&self, event: &Event) -> Option<Rendered> {
        let t = self.by_type.get(event.kind.as_str())?;
        let plain = values(event, false);
        let escaped = values(event, true);
        Some(Rendered {
            subject: substitute(&t.subject, &plain).replace(['\r', '\n'], " "),
            text: substitute(&t.text, &plain),
            html: t.html.as_ref().map(|h| substitute(h, &escaped)),
        })
    }
}

fn split_subject(text: &str) -> Option<(&str, &str)> {
    let (first, rest) = text.split_once('\n')?;
    let subject = first.strip_prefix("Subject:")?.trim();
    Some((
        subject,
        rest.strip_prefix("\r\n")
            .or_else(|| rest.strip_prefix('\n'))
            .unwrap_or(rest),
    ))
}

/// The first `{{name}}` that is not a known placeholder.
fn unknown_placeholder(template: &str) -> Option<String> {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Some(after.chars().take(20).collect());
        };
        let name = after[..end].trim();
        if !PLACEHOLDERS.contains(&name) {
            return Some(name.to_owned());
        }
        rest = &after[end + 2..];
    }
    None
}

fn substitute(template: &str, values: &HashMap<&'static str, String>) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                out.push_str(values.get(name).map_or("", String::as_str));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn money(amount: f64, currency: &str) -> String {
    format!("{amount:.2} {currency}")
}

fn values(event: &Event, html: bool) -> HashMap<&'static str, String> {
    let esc = |s: &str| if html { escape(s) } else { s.to_owned() };
    let o = &event.order;
    let lines = if html {
        o.items
            .iter()
            .map(|l| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&l.name),
                    escape(&l.sku),
                    l.quantity,
                    escape(&money(l.price, &o.currency)),
                    escape(&money(l.line_total, &o.currency)),
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        o.items
            .iter()
            .map(|l| {
                format!(
                    "  {} x {} ({}) at {} = {}",
                    l.quantity,
                    l.name,
                    l.sku,
                    money(l.price, &o.currency),
                    money(l.line_total, &o.currency)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    HashMap::from([
        ("order_id", esc(&o.id)),
        ("event_id", esc(&event.event_id)),
        ("event_type", esc(&event.kind)),
        ("customer", esc(&o.user_email)),
        ("status", esc(&o.status)),
        ("total", esc(&money(o.total, &o.currency))),
        ("currency", esc(&o.currency)),
        ("created_at", esc(&o.created_at)),
        ("updated_at", esc(&o.updated_at)),
        ("occurred_at", esc(&event.occurred_at)),
        ("lines", lines),
    ])
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::event::tests::body;

    fn event(kind: &str) -> Event {
        match Event::parse(&body(None, kind)) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn built_in_templates_show_the_order() {
        let t = Templates::load(None).map_err(|e| e.to_string());
        let r = t.map(|t| t.render(&event("order.shipped")));
        let Ok(Some(r)) = r else {
            panic!("no email for order.shipped: {r:?}")
        };
        assert!(r.subject.contains("o-1"), "{}", r.subject);
        for part in [r.text.as_str(), r.html.as_deref().unwrap_or_default()] {
            for wanted in [
                "o-1",
                "Mug",
                "MUG-1",
                "39.98 USD",
                "19.99 USD",
                "Created",
                "2026-01-02T03:04:05.000Z",
            ] {
                assert!(part.contains(wanted), "{wanted} missing from {part}");
            }
        }
    }

    #[test]
    fn payment_gets_no_email_unless_a_template_is_added() {
        let none = Templates::load(None).map(|t| t.render(&event("order.paid")).is_none());
        assert_eq!(none, Ok(true));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let written = std::fs::write(
            dir.path().join("order.paid.txt"),
            "Subject: Paid {{order_id}}\n\nThanks for {{total}}.\n",
        );
        assert!(written.is_ok());
        let t = Templates::load(Some(dir.path())).map_err(|e| e.to_string());
        let r = t.map(|t| t.render(&event("order.paid")));
        let Ok(Some(r)) = r else { panic!("{r:?}") };
        assert_eq!(r.subject, "Paid o-1");
        assert_eq!(r.text, "Thanks for 39.98 USD.\n");
        assert_eq!(r.html, None);
    }

    #[test]
    fn unknown_placeholders_and_missing_subjects_stop_the_load() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let _ = std::fs::write(
            dir.path().join("order.created.txt"),
            "Subject: x\n\n{{oder_id}}",
        );
        let err = Templates::load(Some(dir.path())).err().unwrap_or_default();
        assert!(err.contains("oder_id"), "{err}");
        let _ = std::fs::write(dir.path().join("order.created.txt"), "Hello {{order_id}}");
        let err = Templates::load(Some(dir.path())).err().unwrap_or_default();
        assert!(err.contains("Subject"), "{err}");
    }

    #[test]
    fn html_values_are_escaped() {
        let mut e = event("order.created");
        e.order.items[0].name = "<script>x</script> & co".into();
        let r = Templates::load(None).ok().and_then(|t| t.render(&e));
        let html = r.and_then(|r| r.html).unwrap_or_default();
        assert!(
            html.contains("&lt;script&gt;x&lt;/script&gt; &amp; co"),
            "{html}"
        );
        assert!(!html.contains("<script>"), "{html}");
    }
}
