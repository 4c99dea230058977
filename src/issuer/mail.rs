//! Mail, the runtime half: the three senders of [`crate::mail::Mailer`] (the local outbox in the
//! `OUTBOX` KV namespace, Cloudflare's `send_email` binding, an HTTP email API), sending a one-time
//! link after the answer, and `GET /dev/outbox`.

use crate::account::protocol::{LinkPurpose, MailLink};
use crate::config::Config;
use crate::error::ApiError;
use crate::mail::{Mail, MailConfig, MailKind, Mailer, Transport};
use crate::web::{self, response, Reply};
use worker::{Env, Headers, Method, Request, RequestInit};

/// The KV namespace of the local outbox (`MAIL_TRANSPORT=outbox`; development and tests only).
pub const OUTBOX_BINDING: &str = "OUTBOX";
/// The `send_email` binding (`MAIL_TRANSPORT=send_email`).
pub const SEND_EMAIL_BINDING: &str = "SEND_EMAIL";
/// The secret holding the HTTP email API's key (`MAIL_TRANSPORT=http`), sent as a bearer token.
pub const HTTP_KEY_SECRET: &str = "MAIL_HTTP_KEY";
/// The most mails `GET /dev/outbox` lists (the newest).
const OUTBOX_LIST_LIMIT: usize = 200;

/// The local outbox: each mail one KV entry, keyed by time so a listing is in order.
struct Outbox<'a> {
    env: &'a Env,
    id: String,
}

impl Mailer for Outbox<'_> {
    async fn send(&self, mail: &Mail) -> Result<(), String> {
        let kv = self.env.kv(OUTBOX_BINDING).map_err(|e| format!("{OUTBOX_BINDING} binding: {e}"))?;
        let sent_at = crate::web::now_millis();
        let key = format!("mail:{sent_at:015}:{}", self.id);
        let mut entry = serde_json::to_value(mail).map_err(|e| e.to_string())?;
        if let Some(fields) = entry.as_object_mut() {
            fields.insert("id".into(), key.clone().into());
            fields.insert("sent_at".into(), (sent_at / 1000).into());
        }
        let put = kv.put(&key, entry.to_string()).map_err(|e| e.to_string())?;
        // A day is plenty for a development outbox.
        put.expiration_ttl(86_400).execute().await.map_err(|e| format!("outbox write: {e}"))
    }
}

/// Cloudflare's `send_email` binding.
struct Binding<'a> {
    env: &'a Env,
}

impl Mailer for Binding<'_> {
    async fn send(&self, mail: &Mail) -> Result<(), String> {
        let binding =
            self.env.send_email(SEND_EMAIL_BINDING).map_err(|e| format!("{SEND_EMAIL_BINDING} binding: {e}"))?;
        let message = worker::SendEmailBuilder::builder(&mail.from, &mail.to, &mail.subject)
            .text(&mail.text)
            .html(&mail.html)
            .build();
        binding.send_with_builder(&message).await.map(|_| ()).map_err(|e| format!("send_email: {e:?}"))
    }
}

/// An HTTP email API: `POST` of `{"from", "to", "subject", "text", "html"}` as JSON with the key as
/// a bearer token; any 2xx is sent.
struct Http<'a> {
    env: &'a Env,
    url: &'a str,
}

impl Mailer for Http<'_> {
    async fn send(&self, mail: &Mail) -> Result<(), String> {
        let body = serde_json::json!({
            "from": mail.from, "to": mail.to, "subject": mail.subject, "text": mail.text, "html": mail.html,
        });
        let headers = Headers::new();
        headers.set("content-type", "application/json").map_err(|e| e.to_string())?;
        if let Ok(key) = self.env.secret(HTTP_KEY_SECRET) {
            headers.set("authorization", &format!("Bearer {}", key.to_string().trim())).map_err(|e| e.to_string())?;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_headers(headers).with_body(Some(body.to_string().into()));
        let request = Request::new_with_init(self.url, &init).map_err(|e| e.to_string())?;
        let answer = worker::Fetch::Request(request).send().await.map_err(|e| format!("mail API unreachable: {e}"))?;
        match answer.status_code() {
            200..=299 => Ok(()),
            status => Err(format!("mail API answered {status}")),
        }
    }
}

/// Sends `mail` by the configured transport.
async fn send(env: &Env, config: &MailConfig, mail: &Mail, id: &str) -> Result<(), String> {
    match &config.transport {
        Transport::Outbox => Outbox { env, id: id.to_owned() }.send(mail).await,
        Transport::SendEmail => Binding { env }.send(mail).await,
        Transport::Http { url } => Http { env, url }.send(mail).await,
    }
}

/// The mail configuration, or 503 `mail_unavailable` when no transport is configured.
pub fn configured(config: &Config) -> Result<&MailConfig, ApiError> {
    config.mail.as_ref().ok_or(ApiError::MailUnavailable)
}

/// Mails a one-time link after the answer of request `rid` is sent (see [`send_after`]).
pub fn send_link(env: &Env, config: &Config, rid: &str, purpose: LinkPurpose, link: MailLink) {
    send_after(env, config, rid, purpose.into(), &link.to, &link.token);
}

/// Sends the mail of `kind` to `to` (with `token`, for a link) after the answer of request `rid` is
/// sent (see [`deliver`]).
pub fn send_after(env: &Env, config: &Config, rid: &str, kind: MailKind, to: &str, token: &str) {
    let (env, config, to, token, id) = (env.clone(), config.clone(), to.to_owned(), token.to_owned(), rid.to_owned());
    web::in_background(rid, async move { deliver(&env, &config, kind, &to, &token, &id).await });
}

/// Renders and sends the mail of `kind` to `to`. A failure is logged (the kind and the recipient's
/// domain, never the link); the user can ask again.
pub async fn deliver(env: &Env, config: &Config, kind: MailKind, to: &str, token: &str, id: &str) {
    let Some(mail_config) = config.mail.as_ref() else { return };
    let mail = mail_config.render(kind, to, token, &config.issuer);
    if let Err(e) = send(env, mail_config, &mail, id).await {
        let domain = mail.to.rsplit_once('@').map_or("", |(_, d)| d);
        worker::console_error!(
            "{}",
            serde_json::json!({ "kind": "mail_failed", "mail": mail.kind, "to_domain": domain, "request_id": id, "error": e })
        );
    }
}

/// `GET /dev/outbox[?to=<email>]`: the mails of the local outbox, oldest first (only routed when
/// `MAIL_TRANSPORT=outbox`).
pub async fn outbox(req: &Request, env: &Env) -> Result<Reply, ApiError> {
    let url = req.url()?;
    let to = url.query_pairs().find(|(k, _)| k == "to").map(|(_, v)| v.to_ascii_lowercase());
    let kv = env.kv(OUTBOX_BINDING).map_err(|e| ApiError::Server(format!("{OUTBOX_BINDING} binding: {e}")))?;
    let listed = kv
        .list()
        .prefix("mail:".into())
        .execute()
        .await
        .map_err(|e| ApiError::Unavailable(format!("outbox list: {e}")))?;
    let mut mails = Vec::new();
    let keys: Vec<String> = listed.keys.into_iter().map(|k| k.name).collect();
    let start = keys.len().saturating_sub(OUTBOX_LIST_LIMIT);
    for key in &keys[start..] {
        let Some(text) = kv.get(key).text().await.map_err(|e| ApiError::Unavailable(format!("outbox read: {e}")))?
        else {
            continue;
        };
        let Ok(mail) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        if to.as_deref().is_none_or(|to| mail.get("to").and_then(|t| t.as_str()) == Some(to)) {
            mails.push(mail);
        }
    }
    Ok(response::json(&serde_json::json!({ "mails": mails }), 200, "no-store")?.into())
}
