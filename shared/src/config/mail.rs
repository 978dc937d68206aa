//! Mail: where account mail goes (`SMTP_URL`, or files in development), who it is from
//! (`MAIL_FROM`), the links in it (`APP_BASE_URL`), and how long its tokens live.

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use super::{
    ConfigError,
    values::{Lookup, parse_num},
};

#[derive(Debug, Clone)]
pub struct MailConfig {
    /// `MAIL_FROM`: the sender of account mail.
    pub from: String,
    /// `APP_BASE_URL`, without a trailing slash: links are `{base}/reset-password?token=…`.
    pub app_base_url: String,
    pub delivery: MailDelivery,
    /// `PASSWORD_RESET_TTL_SECS`: how long a reset token is good for.
    pub reset_ttl: Duration,
    /// `EMAIL_VERIFICATION_TTL_SECS`: how long a verification token is good for.
    pub verification_ttl: Duration,
    /// `REQUIRE_VERIFIED_EMAIL`: login of an unverified account is 403.
    pub require_verified_email: bool,
}

/// Where account mail goes.
#[derive(Debug, Clone)]
pub enum MailDelivery {
    /// `SMTP_URL`.
    Smtp(SmtpSettings),
    /// Development without `SMTP_URL`: written to the log and to `./data/mail/`.
    DevelopmentFiles,
    /// Production without `SMTP_URL`: the mail endpoints answer 503.
    Unconfigured,
}

/// How to reach the SMTP server. The password never appears in `Debug` output.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub credentials: Option<(String, SecretString)>,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtp://…`: STARTTLS, required (port 587 by default).
    StartTls,
    /// `smtps://…`: TLS from the first byte (port 465 by default).
    Implicit,
    /// `smtp://…?tls=none`: plain text, for a local sink such as Mailpit (port 25 by default).
    None,
}

pub(super) fn parse(production: bool, get: &impl Lookup) -> Result<MailConfig, ConfigError> {
    let delivery = match get("SMTP_URL") {
        Some(url) => MailDelivery::Smtp(parse_smtp_url(&SecretString::from(url))?),
        None if production => MailDelivery::Unconfigured,
        None => MailDelivery::DevelopmentFiles,
    };
    let app_base_url = match get("APP_BASE_URL") {
        Some(url) => url,
        // Mailed links must not point at a developer's machine.
        None if production && matches!(delivery, MailDelivery::Smtp(_)) => {
            return Err(ConfigError::new(
                "APP_BASE_URL",
                "is required in production when SMTP_URL is set (the front end mailed links open)",
            ));
        }
        None => "http://localhost:3000".to_owned(),
    }
    .trim()
    .trim_end_matches('/')
    .to_owned();
    if !(app_base_url.starts_with("https://") || app_base_url.starts_with("http://")) {
        return Err(ConfigError::new(
            "APP_BASE_URL",
            "must start with https:// (or http:// for a local front end)",
        ));
    }
    let from = get("MAIL_FROM").unwrap_or_else(|| "Task API <no-reply@localhost>".to_owned());
    if from.contains(['\r', '\n']) || !from.contains('@') {
        return Err(ConfigError::new(
            "MAIL_FROM",
            "must be an address, optionally with a name: `Task API <no-reply@example.com>`",
        ));
    }
    Ok(MailConfig {
        from: from.trim().to_owned(),
        app_base_url,
        delivery,
        reset_ttl: Duration::from_secs(parse_num(
            get,
            "PASSWORD_RESET_TTL_SECS",
            1_800u64,
            60..=86_400,
        )?),
        verification_ttl: Duration::from_secs(parse_num(
            get,
            "EMAIL_VERIFICATION_TTL_SECS",
            86_400u64,
            60..=2_592_000,
        )?),
        require_verified_email: parse_bool(get, "REQUIRE_VERIFIED_EMAIL")?,
    })
}

fn parse_bool(get: &impl Lookup, name: &'static str) -> Result<bool, ConfigError> {
    match get(name).as_deref().map(str::trim) {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(_) => Err(ConfigError::new(name, "must be `true` or `false`")),
    }
}

/// `smtp://[user:pass@]host[:port][?tls=none]` or `smtps://[user:pass@]host[:port]`
/// (userinfo %-escaped, as in any URL). The error never repeats the URL, which may hold a
/// password.
fn parse_smtp_url(url: &SecretString) -> Result<SmtpSettings, ConfigError> {
    let bad = |problem: &str| ConfigError::new("SMTP_URL", problem.to_owned());
    let url = url::Url::parse(url.expose_secret().trim())
        .map_err(|_| bad("must be a URL: smtp://host:port or smtps://host:port"))?;
    let tls = match (url.scheme(), url.query()) {
        ("smtp", None) => SmtpTls::StartTls,
        ("smtp", Some("tls=none")) => SmtpTls::None,
        ("smtps", None) => SmtpTls::Implicit,
        ("smtp" | "smtps", Some(_)) => {
            return Err(bad("takes no query but `?tls=none` (smtp:// only)"));
        }
        _ => return Err(bad("must start with smtp:// or smtps://")),
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let decode = |raw: &str| {
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| bad("has credentials that are not UTF-8"))
    };
    let credentials = match (url.username(), url.password()) {
        ("", None) => None,
        (user, Some(pass)) if !user.is_empty() => {
            Some((decode(user)?, SecretString::from(decode(pass)?)))
        }
        _ => return Err(bad("credentials must be user:password")),
    };
    let port = url.port().unwrap_or(match tls {
        SmtpTls::StartTls => 587,
        SmtpTls::Implicit => 465,
        SmtpTls::None => 25,
    });
    Ok(SmtpSettings {
        host,
        port,
        tls,
        credentials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp(url: &str) -> Result<SmtpSettings, ConfigError> {
        parse_smtp_url(&SecretString::from(url.to_owned()))
    }

    #[test]
    fn production_mail_needs_a_base_url_for_its_links() {
        let vars = |extra: &[(&'static str, &'static str)]| {
            let mut vars = vec![("SMTP_URL", "smtp://127.0.0.1:25?tls=none")];
            vars.extend_from_slice(extra);
            vars
        };
        let lookup = |vars: Vec<(&'static str, &'static str)>| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let err = parse(true, &lookup(vars(&[]))).unwrap_err();
        assert_eq!(err.variable, "APP_BASE_URL");
        let ok = parse(
            true,
            &lookup(vars(&[("APP_BASE_URL", "https://app.example.com/")])),
        );
        assert_eq!(ok.unwrap().app_base_url, "https://app.example.com");
        // Development, or production without mail, falls back to the local front end.
        assert_eq!(
            parse(false, &lookup(vars(&[]))).unwrap().app_base_url,
            "http://localhost:3000"
        );
        assert!(matches!(
            parse(true, &lookup(Vec::new())).unwrap().delivery,
            MailDelivery::Unconfigured
        ));
    }

    #[test]
    fn smtp_urls_select_tls_port_and_credentials() {
        let s = smtp("smtp://user%40x:p%3Ass@mail.example.com").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("mail.example.com", 587, SmtpTls::StartTls)
        );
        let (user, pass) = s.credentials.unwrap();
        assert_eq!(user, "user@x");
        assert_eq!(pass.expose_secret(), "p:ss");
        let s = smtp("smtps://email-smtp.us-east-1.amazonaws.com").unwrap();
        assert_eq!((s.port, s.tls), (465, SmtpTls::Implicit));
        let s = smtp("smtp://127.0.0.1:1025?tls=none").unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.tls),
            ("127.0.0.1", 1025, SmtpTls::None)
        );
        assert!(s.credentials.is_none());
    }

    #[test]
    fn bad_smtp_urls_name_the_variable_and_never_repeat_the_password() {
        for url in [
            "http://mail.example.com",
            "smtp://u:secretpw@",
            "smtp://u:secretpw@host:notaport",
            "smtps://host?tls=none",
            "smtp://host?tls=maybe",
            "smtp://usersecretpw@host",
            "mail.example.com",
        ] {
            let err = smtp(url).unwrap_err();
            assert_eq!(err.variable, "SMTP_URL", "{url}");
            assert!(!err.to_string().contains("secretpw"), "{err}");
        }
        let s = smtp("smtp://u:secretpw@host").unwrap();
        assert!(!format!("{s:?}").contains("secretpw"));
    }
}
