//! Guest paths: absolute, '/'-separated, no `.`/`..` (the guest has no symlinks to honour).

/// Lexically normalizes an absolute guest path; `..` at the root stays at the root.
pub(crate) fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Every ancestor directory of `path`, excluding `/` itself.
pub(crate) fn ancestors(path: &str) -> impl Iterator<Item = String> + '_ {
    path.match_indices('/')
        .filter(|&(i, _)| i > 0)
        .map(move |(i, _)| path[..i].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        assert_eq!(normalize("/a/./b/../c//d/"), "/a/c/d");
        assert_eq!(normalize("/.."), "/");
        assert_eq!(normalize("/"), "/");
    }

    #[test]
    fn lists_ancestors() {
        let got: Vec<String> = ancestors("/usr/lib/x/libc.so.6").collect();
        assert_eq!(got, ["/usr", "/usr/lib", "/usr/lib/x"]);
        assert_eq!(ancestors("/init").count(), 0);
    }
}
