//! Reading SOAP answers with `roxmltree`: elements are found by local name, because cameras
//! pick their own namespace prefixes.

use roxmltree::Node;

/// The first descendant of `node` (itself included) with local name `name`.
pub(crate) fn find<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.descendants()
        .find(|n| n.is_element() && n.tag_name().name() == name)
}

/// Every descendant of `node` with local name `name`.
pub(crate) fn find_all<'a, 'i: 'a>(
    node: Node<'a, 'i>,
    name: &'a str,
) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    node.descendants()
        .filter(move |n| n.is_element() && n.tag_name().name() == name)
}

/// The trimmed text of the first descendant named `name`, if it has any.
pub(crate) fn text(node: Node<'_, '_>, name: &str) -> Option<String> {
    find(node, name)
        .and_then(|n| n.text())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The first direct child element of `node` with local name `name`.
pub(crate) fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|n| n.is_element() && n.tag_name().name() == name)
}

/// `s` with the five XML special characters escaped, for text and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_by_local_name_whatever_the_prefix() {
        let doc = roxmltree::Document::parse(
            r#"<a:E xmlns:a="urn:a" xmlns:b="urn:b"><b:X> 1 </b:X><a:X>2</a:X></a:E>"#,
        )
        .unwrap();
        assert_eq!(text(doc.root(), "X").as_deref(), Some("1"));
        assert_eq!(find_all(doc.root(), "X").count(), 2);
        assert_eq!(escape("a<&>\"'"), "a&lt;&amp;&gt;&quot;&apos;");
    }
}
