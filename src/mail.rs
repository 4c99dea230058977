//! Mail, the pure half: the configuration (`MAIL_TRANSPORT`, `MAIL_FROM`, `MAIL_HTTP_URL`,
//! `MAIL_TEMPLATES`, `APP_URL`), the templates of the two mails gatehouse sends (email verification
//! and password reset, plain text and HTML, overridable), and the [`Mailer`] trait the runtime's
//! senders implement (`issuer::mail`: the local outbox, Cloudflare's `send_email` binding, an HTTP
//! email API). The one-time link goes in the URL fragment, so it never reaches a server's log or a
//! `Referer` header.

use crate::account::state::LinkPurpose;
use serde::{Deserialize, Serialize};

/// How mail leaves gatehouse (`MAIL_TRANSPORT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Kept in the `OUTBOX` KV namespace and listed at `GET /dev/outbox`: local development and
    /// tests only (`scripts/deploy.mjs` refuses it, and `[env.production]` has no `OUTBOX`).
    Outbox,
    /// Cloudflare's `send_email` binding named `SEND_EMAIL`.
    SendEmail,
    /// `POST` of a JSON mail to an email API (`MAIL_HTTP_URL`, key in the `MAIL_HTTP_KEY` secret).
    Http {
        /// The API's URL (https, or http on loopback for tests).
        url: String,
    },
}

/// One mail's templates: `{{link}}`, `{{email}}` and `{{issuer}}` are replaced (HTML-escaped in
/// `html`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

/// Partial overrides of a template (`MAIL_TEMPLATES`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateOverride {
    subject: Option<String>,
    text: Option<String>,
    html: Option<String>,
}

/// `MAIL_TEMPLATES`: `{"verify": {...}, "reset": {...}, "exists": {...}}`, each field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Overrides {
    #[serde(default)]
    verify: Option<TemplateOverride>,
    #[serde(default)]
    reset: Option<TemplateOverride>,
    #[serde(default)]
    exists: Option<TemplateOverride>,
}

/// The mails gatehouse sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// An email verification link.
    Verify,
    /// A password reset link.
    Reset,
    /// "You already have an account": a registration with a taken email under
    /// `REGISTRATION_MODE=uniform`, whose answer cannot say so. Its link is the sign-in page.
    Exists,
}

impl MailKind {
    /// The kind's name (`kind` in the outbox, the key in `MAIL_TEMPLATES`).
    pub fn name(self) -> &'static str {
        match self {
            MailKind::Verify => "verify",
            MailKind::Reset => "reset",
            MailKind::Exists => "exists",
        }
    }
}

impl From<LinkPurpose> for MailKind {
    fn from(purpose: LinkPurpose) -> Self {
        match purpose {
            LinkPurpose::Verify => MailKind::Verify,
            LinkPurpose::Reset => MailKind::Reset,
        }
    }
}

/// The mail configuration; `None` in [`crate::config::Config::mail`] when `MAIL_TRANSPORT` is unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailConfig {
    /// How mail leaves.
    pub transport: Transport,
    /// The `From` address (`MAIL_FROM`, default `no-reply@<host of ISSUER>`).
    pub from: String,
    /// Where links point (`APP_URL`, default `ISSUER`), without a trailing slash.
    pub app_url: String,
    /// The verification mail.
    pub verify: Template,
    /// The reset mail.
    pub reset: Template,
    /// The "you already have an account" mail.
    pub exists: Template,
}

/// A mail ready to send.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mail {
    /// `verify` or `reset`.
    pub kind: String,
    /// The recipient.
    pub to: String,
    /// The sender.
    pub from: String,
    /// The subject.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bodies carry a one-time link.
        f.debug_struct("Mail").field("kind", &self.kind).field("to", &self.to).finish_non_exhaustive()
    }
}

/// Something that sends mail. The runtime's senders live in `issuer::mail`; tests use a recorder.
#[allow(async_fn_in_trait)]
pub trait Mailer {
    /// Sends one mail; the error says why not (never the body, which carries a link).
    async fn send(&self, mail: &Mail) -> Result<(), String>;
}

fn default_template(kind: MailKind) -> Template {
    match kind {
        MailKind::Exists => Template {
            subject: "You already have an account".into(),
            text: "Hello,\n\nsomeone tried to sign up at {{issuer}} with {{email}}, which already has an account. \
                   If it was you, sign in here:\n\n{{link}}\n\nForgot your password? Choose \"Forgot password?\" \
                   on that page. If it was not you, ignore this mail: nothing changed.\n"
                .into(),
            html: "<p>Hello,</p><p>someone tried to sign up at {{issuer}} with {{email}}, which already has an \
                   account. If it was you, <a href=\"{{link}}\">sign in here</a>; forgot your password? Choose \
                   \"Forgot password?\" on that page.</p><p>If it was not you, ignore this mail: nothing changed.</p>"
                .into(),
        },
        MailKind::Verify => Template {
            subject: "Confirm your email address".into(),
            text: "Hello,\n\nplease confirm that {{email}} is your address by opening this link:\n\n{{link}}\n\n\
                   The link works once, for 24 hours. If you did not sign up at {{issuer}}, ignore this mail.\n"
                .into(),
            html: "<p>Hello,</p><p>please confirm that {{email}} is your address:</p>\
                   <p><a href=\"{{link}}\">Confirm my email address</a></p>\
                   <p>The link works once, for 24 hours. If you did not sign up at {{issuer}}, ignore this mail.</p>"
                .into(),
        },
        MailKind::Reset => Template {
            subject: "Reset your password".into(),
            text:
                "Hello,\n\nsomeone asked to reset the password of {{email}}. To choose a new one, open:\n\n{{link}}\n\n\
                   The link works once, for 30 minutes, and signs out every device. If it was not you, ignore \
                   this mail: your password stays as it is.\n"
                    .into(),
            html: "<p>Hello,</p><p>someone asked to reset the password of {{email}}.</p>\
                   <p><a href=\"{{link}}\">Choose a new password</a></p>\
                   <p>The link works once, for 30 minutes, and signs out every device. If it was not you, ignore \
                   this mail: your password stays as it is.</p>"
                .into(),
        },
    }
}

fn apply(base: Template, over: Option<TemplateOverride>) -> Template {
    let Some(over) = over else { return base };
    Template {
        subject: over.subject.unwrap_or(base.subject),
        text: over.text.unwrap_or(base.text),
        html: over.html.unwrap_or(base.html),
    }
}

impl MailConfig {
    /// Reads the mail variables; `Ok(None)` when `MAIL_TRANSPORT` is unset (no mail is sent, and
    /// the routes that must send one answer 503 `mail_unavailable`).
    pub fn from_lookup(
        var: &dyn Fn(&str) -> Option<String>,
        issuer: &str,
    ) -> Result<Option<MailConfig>, (&'static str, String)> {
        let nonempty = |name: &str| var(name).map(|t| t.trim().to_owned()).filter(|t| !t.is_empty());
        let invalid = |name: &'static str, reason: String| (name, reason);
        let transport = match nonempty("MAIL_TRANSPORT").as_deref() {
            None => return Ok(None),
            Some("outbox") => Transport::Outbox,
            Some("send_email") => Transport::SendEmail,
            Some("http") => {
                let url = nonempty("MAIL_HTTP_URL")
                    .ok_or_else(|| invalid("MAIL_HTTP_URL", "MAIL_TRANSPORT=http needs the API's URL".into()))?;
                let url = crate::issuers::jwks_url_allowed(&url).map_err(|reason| invalid("MAIL_HTTP_URL", reason))?;
                Transport::Http { url }
            }
            Some(other) => {
                return Err(invalid(
                    "MAIL_TRANSPORT",
                    format!("{other:?} is not \"outbox\", \"send_email\" or \"http\""),
                ))
            }
        };
        let issuer_url = crate::whatwg::Url::parse(issuer);
        let host =
            issuer_url.as_ref().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_else(|| "localhost".into());
        let from = nonempty("MAIL_FROM").unwrap_or_else(|| format!("no-reply@{host}"));
        if from.contains(['\r', '\n']) || !from.contains('@') {
            return Err(invalid("MAIL_FROM", "must be one email address".into()));
        }
        let app_url = nonempty("APP_URL").unwrap_or_else(|| issuer.to_owned()).trim_end_matches('/').to_owned();
        match crate::whatwg::Url::parse(&app_url) {
            Some(u) if u.is_http() && u.fragment().is_none() => {}
            _ => return Err(invalid("APP_URL", format!("{app_url:?} is not an http(s) URL without a fragment"))),
        }
        let overrides: Overrides = match nonempty("MAIL_TEMPLATES") {
            None => Overrides::default(),
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                invalid(
                    "MAIL_TEMPLATES",
                    format!("not {{\"verify\"|\"reset\": {{\"subject\",\"text\",\"html\"}}}}: {e}"),
                )
            })?,
        };
        let verify = apply(default_template(MailKind::Verify), overrides.verify);
        let reset = apply(default_template(MailKind::Reset), overrides.reset);
        let exists = apply(default_template(MailKind::Exists), overrides.exists);
        for (name, t) in [("verify", &verify), ("reset", &reset), ("exists", &exists)] {
            if t.subject.contains(['\r', '\n']) {
                return Err(invalid("MAIL_TEMPLATES", format!("the {name} subject must be one line")));
            }
            if !t.text.contains("{{link}}") || !t.html.contains("{{link}}") {
                return Err(invalid("MAIL_TEMPLATES", format!("the {name} text and html must contain {{{{link}}}}")));
            }
        }
        Ok(Some(MailConfig { transport, from, app_url, verify, reset, exists }))
    }

    /// The link a mail of `kind` carries: the token in the fragment; the sign-in page for `Exists`.
    pub fn link(&self, kind: MailKind, token: &str) -> String {
        match kind {
            MailKind::Exists => format!("{}/", self.app_url),
            kind => format!("{}/#{}={token}", self.app_url, kind.name()),
        }
    }

    /// The mail of `kind` to `to` carrying `token` (none for `Exists`).
    pub fn render(&self, kind: MailKind, to: &str, token: &str, issuer: &str) -> Mail {
        let template = match kind {
            MailKind::Verify => &self.verify,
            MailKind::Reset => &self.reset,
            MailKind::Exists => &self.exists,
        };
        let link = self.link(kind, token);
        let fill = |text: &str, escape: bool| {
            let e = |s: &str| if escape { html_escape(s) } else { s.to_owned() };
            text.replace("{{link}}", &e(&link)).replace("{{email}}", &e(to)).replace("{{issuer}}", &e(issuer))
        };
        Mail {
            kind: kind.name().into(),
            to: to.into(),
            from: self.from.clone(),
            subject: fill(&template.subject, false).replace(['\r', '\n'], " "),
            text: fill(&template.text, false),
            html: fill(&template.html, true),
        }
    }
}

/// Escapes text for HTML content and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Option<MailConfig>, (&'static str, String)> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        MailConfig::from_lookup(&|name| map.get(name).cloned(), "https://auth.example.com")
    }

    #[test]
    fn unset_transport_is_no_mail() {
        assert_eq!(config(&[]).expect("valid"), None);
    }

    #[test]
    fn transports_and_defaults() {
        let c = config(&[("MAIL_TRANSPORT", "outbox")]).expect("valid").expect("on");
        assert_eq!(c.transport, Transport::Outbox);
        assert_eq!(c.from, "no-reply@auth.example.com");
        assert_eq!(c.app_url, "https://auth.example.com");
        assert!(config(&[("MAIL_TRANSPORT", "http")]).is_err(), "http needs a URL");
        assert!(config(&[("MAIL_TRANSPORT", "http"), ("MAIL_HTTP_URL", "http://mail.example.com/send")]).is_err());
        let http = config(&[("MAIL_TRANSPORT", "http"), ("MAIL_HTTP_URL", "https://api.mail.test/send")])
            .expect("valid")
            .expect("on");
        assert_eq!(http.transport, Transport::Http { url: "https://api.mail.test/send".into() });
        assert!(config(&[("MAIL_TRANSPORT", "smtp")]).is_err());
        assert!(config(&[("MAIL_TRANSPORT", "outbox"), ("MAIL_FROM", "a@b.c\r\nBcc: x@y.z")]).is_err());
        assert!(config(&[("MAIL_TRANSPORT", "outbox"), ("APP_URL", "javascript:alert(1)")]).is_err());
    }

    #[test]
    fn links_carry_the_token_in_the_fragment() {
        let c = config(&[("MAIL_TRANSPORT", "outbox"), ("APP_URL", "https://app.example.com/")])
            .expect("valid")
            .expect("on");
        let mail = c.render(MailKind::Reset, "a@b.co", "ghp1.abc.def", "https://auth.example.com");
        assert!(mail.text.contains("https://app.example.com/#reset=ghp1.abc.def"), "{}", mail.text);
        assert!(mail.html.contains("href=\"https://app.example.com/#reset=ghp1.abc.def\""), "{}", mail.html);
        assert_eq!(mail.kind, "reset");
        assert!(!format!("{mail:?}").contains("ghp1"), "Debug hides the link");
    }

    #[test]
    fn overrides_replace_fields_and_html_escapes_values() {
        let templates = r#"{"verify": {"subject": "Welcome to {{issuer}}", "html": "<b>{{email}}</b> {{link}}"}}"#;
        let c = config(&[("MAIL_TRANSPORT", "outbox"), ("MAIL_TEMPLATES", templates)]).expect("valid").expect("on");
        let mail = c.render(MailKind::Verify, "<x>@b.co", "ghv1.t.s", "https://auth.example.com");
        assert_eq!(mail.subject, "Welcome to https://auth.example.com");
        assert!(mail.html.starts_with("<b>&lt;x&gt;@b.co</b>"), "{}", mail.html);
        assert!(mail.text.contains("<x>@b.co"), "text is not escaped");
        assert!(
            config(&[("MAIL_TRANSPORT", "outbox"), ("MAIL_TEMPLATES", r#"{"verify": {"text": "no link"}}"#)]).is_err()
        );
        assert!(config(&[("MAIL_TRANSPORT", "outbox"), ("MAIL_TEMPLATES", r#"{"welcome": {}}"#)]).is_err());
        let exists = c.render(MailKind::Exists, "a@b.co", "", "https://auth.example.com");
        assert_eq!(exists.kind, "exists");
        assert!(exists.text.contains("https://auth.example.com/\n"), "the sign-in page: {}", exists.text);
    }
}
