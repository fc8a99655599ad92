//! Camera URLs carry passwords; this module removes them before a URL reaches a log line,
//! an error message or the status API.

/// Returns `url` with any password replaced by `***` (the user name is kept, it helps
/// diagnose a 401). Works on strings that do not parse as URLs too: anything between `//`
/// and the last `@` of the authority that follows a `:` is masked, so a malformed URL that
/// still contains a password is not leaked either.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("//") else {
        return url.to_string();
    };
    let auth_start = scheme_end + 2;
    let rest = &url[auth_start..];
    // The authority ends at the first '/', '?' or '#'; userinfo ends at its last '@'.
    let auth_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_len];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_string();
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..auth_start]);
    out.push_str(&userinfo[..colon]);
    out.push_str(":***");
    out.push_str(&rest[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn masks_the_password_and_keeps_the_rest() {
        assert_eq!(
            redact_url("rtsp://admin:s3cret@192.168.1.10:554/stream1?x=1"),
            "rtsp://admin:***@192.168.1.10:554/stream1?x=1"
        );
    }

    #[test]
    fn password_with_at_and_colon_is_fully_masked() {
        let r = redact_url("rtsp://admin:p@ss:w@rd@cam/s");
        assert_eq!(r, "rtsp://admin:***@cam/s");
        assert!(!r.contains("ss:w"));
    }

    #[test]
    fn urls_without_password_are_unchanged() {
        for u in [
            "rtsp://cam/stream",
            "rtsp://user@cam/stream",
            "rtsp://cam/path@with-at",
            "not a url",
        ] {
            assert_eq!(redact_url(u), u);
        }
    }

    #[test]
    fn an_at_in_the_path_does_not_expose_the_password() {
        assert_eq!(redact_url("rtsp://u:pw@cam/a@b"), "rtsp://u:***@cam/a@b");
    }
}
