//! The little XML that OpenCV cascade files need: elements, text, no attributes kept.

#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) name: String,
    pub(super) text: String,
    pub(super) children: Vec<Node>,
}

impl Node {
    pub(super) fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// A minimal XML reader for OpenCV storage files: elements and text; attributes,
/// comments and declarations are skipped.
pub(super) fn parse_xml(s: &str) -> std::result::Result<Node, String> {
    let mut stack = vec![Node {
        name: String::new(),
        text: String::new(),
        children: vec![],
    }];
    let mut i = 0;
    let b = s.as_bytes();
    while i < b.len() {
        if b[i] == b'<' {
            if s[i..].starts_with("<!--") {
                i += s[i..].find("-->").ok_or("unclosed comment")? + 3;
                continue;
            }
            if s[i..].starts_with("<?") || s[i..].starts_with("<!") {
                i += s[i..].find('>').ok_or("unclosed declaration")? + 1;
                continue;
            }
            let end = i + s[i..].find('>').ok_or("unclosed tag")?;
            let tag = &s[i + 1..end];
            if let Some(name) = tag.strip_prefix('/') {
                let node = stack.pop().ok_or("unbalanced tags")?;
                if node.name != name.trim() {
                    return Err(format!("</{}> closes <{}>", name.trim(), node.name));
                }
                stack
                    .last_mut()
                    .ok_or("unbalanced tags")?
                    .children
                    .push(node);
            } else {
                let self_closing = tag.ends_with('/');
                let name = tag
                    .trim_end_matches('/')
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_string();
                let node = Node {
                    name,
                    text: String::new(),
                    children: vec![],
                };
                if self_closing {
                    stack
                        .last_mut()
                        .ok_or("unbalanced tags")?
                        .children
                        .push(node);
                } else {
                    stack.push(node);
                }
            }
            i = end + 1;
        } else {
            let end = s[i..].find('<').map_or(b.len(), |k| i + k);
            if let Some(top) = stack.last_mut() {
                top.text.push_str(&s[i..end]);
                top.text.push(' ');
            }
            i = end;
        }
    }
    if stack.len() != 1 {
        return Err("unclosed elements at end of file".into());
    }
    stack.pop().ok_or_else(|| "empty document".to_string())
}

pub(super) fn nums<T: std::str::FromStr>(n: &Node) -> std::result::Result<Vec<T>, String> {
    n.text
        .split_whitespace()
        .map(|t| {
            t.parse::<T>()
                .map_err(|_| format!("<{}>: bad number {t}", n.name))
        })
        .collect()
}

pub(super) fn num<T: std::str::FromStr>(
    parent: &Node,
    name: &str,
) -> std::result::Result<T, String> {
    let n = parent.child(name).ok_or(format!("missing <{name}>"))?;
    nums::<T>(n)?
        .into_iter()
        .next()
        .ok_or(format!("empty <{name}>"))
}
