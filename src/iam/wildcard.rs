//! The `*` and `?` patterns of IAM: in `Action`, `Resource` and the `StringLike` operators.
//! `*` matches any run of characters (a `/` included: AWS lets it span key segments), `?`
//! exactly one character. Matching is greedy with one backtrack point, so it is linear in
//! practice and never recursive, whatever a hostile document holds.

/// Whether `text` matches `pattern`, case-sensitively.
pub fn matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // The position after the last `*` seen, and the text position it is currently matched to.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            p += 1;
            backtrack = Some((p, t));
        } else if let Some((star_p, star_t)) = backtrack {
            // Let the last `*` swallow one more character and retry from there.
            p = star_p;
            t = star_t + 1;
            backtrack = Some((star_p, t));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

/// Whether `text` matches `pattern` with ASCII case ignored, as action names compare.
pub fn matches_ignore_case(pattern: &str, text: &str) -> bool {
    matches(&pattern.to_lowercase(), &text.to_lowercase())
}

/// Whether `pattern` holds a wildcard at all.
pub fn has_wildcard(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_patterns() {
        assert!(matches("", ""));
        assert!(matches("abc", "abc"));
        assert!(!matches("abc", "abd"));
        assert!(!matches("abc", "ab"));
        assert!(!matches("ab", "abc"));
        assert!(!matches("", "a"));
        assert!(!matches("Abc", "abc"));
    }

    #[test]
    fn star_matches_any_run_slashes_included() {
        assert!(matches("*", ""));
        assert!(matches("*", "anything/at/all"));
        assert!(matches("a*", "a"));
        assert!(matches("a*c", "abbbc"));
        assert!(matches("a*c", "ac"));
        assert!(!matches("a*c", "acb"));
        assert!(matches("arn:aws:s3:::b/*", "arn:aws:s3:::b/x/y"));
        assert!(!matches("arn:aws:s3:::b/*", "arn:aws:s3:::b"));
        assert!(matches("**a**", "xxa"));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(!matches("a*b*c", "aXbYbZ"));
    }

    #[test]
    fn aws_resource_example() {
        // The example of the IAM user guide's Resource page.
        let p = "arn:aws:s3:::bucket/*/test/*";
        assert!(matches(p, "arn:aws:s3:::bucket/1///test///object.jpg"));
        assert!(matches(p, "arn:aws:s3:::bucket//test/object.jpg"));
        assert!(matches(p, "arn:aws:s3:::bucket/1/test/"));
        assert!(!matches(p, "arn:aws:s3:::bucket/1-test/object.jpg"));
        assert!(!matches(p, "arn:aws:s3:::bucket/test/object.jpg"));
        assert!(!matches(p, "arn:aws:s3:::bucket/1/2/test.jpg"));
    }

    #[test]
    fn question_mark_is_one_character() {
        assert!(matches("a?c", "abc"));
        assert!(matches("a?c", "aéc"));
        assert!(!matches("a?c", "ac"));
        assert!(!matches("a?c", "abbc"));
        assert!(matches("?*", "x"));
        assert!(!matches("?*", ""));
    }

    #[test]
    fn case_insensitive_variant() {
        assert!(matches_ignore_case("s3:Get*", "S3:GETOBJECT"));
        assert!(matches_ignore_case("S3:*", "s3:listbucket"));
        assert!(!matches_ignore_case("s3:Get*", "s3:PutObject"));
    }

    #[test]
    fn hostile_pattern_stays_fast() {
        let pattern = "*a".repeat(500) + "b";
        let text = "a".repeat(5000);
        assert!(!matches(&pattern, &text));
        assert!(has_wildcard("a?"));
        assert!(!has_wildcard("abc"));
    }
}
