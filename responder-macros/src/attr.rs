//! Reading `#[handler(...)]`: every key at most once, each value kept with its span.

use syn::{Expr, ExprArray, ExprLit, Ident, Lit, LitStr, Path, Type};

/// The attribute as written.
#[derive(Default)]
pub(crate) struct Attr {
    /// The request topics, each with its literal (for spans).
    pub(crate) topics: Vec<LitStr>,
    /// Where the topics were given (`topic` or `topics` key).
    pub(crate) topics_key: Option<Ident>,
    /// `json`, `bincode`, `raw`, or the path of a codec type of the user's.
    pub(crate) codec: Option<Path>,
    pub(crate) request: Option<Type>,
    pub(crate) reply: Option<Type>,
    pub(crate) error: Option<Type>,
    pub(crate) method: Option<Ident>,
    pub(crate) krate: Option<Path>,
}

fn once<T>(slot: &mut Option<T>, key: &Ident, value: T) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new_spanned(
            key,
            format!("duplicate key `{key}`"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

fn lit_str(expr: Expr) -> syn::Result<LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s),
        other => Err(syn::Error::new_spanned(other, "expected a string literal")),
    }
}

/// The value of `crate = ...` or `codec = ...`: a path, bare or in a string.
pub(crate) fn crate_path(value: syn::parse::ParseStream<'_>) -> syn::Result<Path> {
    if value.peek(LitStr) {
        value.parse::<LitStr>()?.parse()
    } else {
        value.parse()
    }
}

/// The facade's path, used when `crate = ...` is not given.
pub(crate) fn default_crate() -> Path {
    syn::parse_quote!(::kafka_responder)
}

/// Parses every `#[handler(...)]` attribute of the item.
pub(crate) fn parse(attrs: &[syn::Attribute]) -> syn::Result<Option<Attr>> {
    let mut found = None::<Attr>;
    for a in attrs.iter().filter(|a| a.path().is_ident("handler")) {
        if found.is_some() {
            return Err(syn::Error::new_spanned(
                a,
                "duplicate #[handler(...)] attribute: put every key in one",
            ));
        }
        let mut out = Attr::default();
        a.parse_nested_meta(|meta| {
            let key = meta
                .path
                .get_ident()
                .cloned()
                .ok_or_else(|| meta.error("expected a key such as `topic`"))?;
            match key.to_string().as_str() {
                "topic" => {
                    let s: LitStr = meta.value()?.parse()?;
                    once(&mut out.topics_key, &key, key.clone())?;
                    out.topics.push(s);
                }
                "topics" => {
                    let arr: ExprArray = meta.value()?.parse()?;
                    once(&mut out.topics_key, &key, key.clone())?;
                    for e in arr.elems {
                        out.topics.push(lit_str(e)?);
                    }
                }
                "codec" => {
                    let codec = crate_path(meta.value()?)?;
                    once(&mut out.codec, &key, codec)?;
                }
                "request" => once(&mut out.request, &key, meta.value()?.parse()?)?,
                "reply" => once(&mut out.reply, &key, meta.value()?.parse()?)?,
                "error" => once(&mut out.error, &key, meta.value()?.parse()?)?,
                "method" => once(&mut out.method, &key, meta.value()?.parse()?)?,
                "crate" => once(&mut out.krate, &key, crate_path(meta.value()?)?)?,
                other => {
                    return Err(syn::Error::new_spanned(
                        &key,
                        format!(
                            "unknown key `{other}`; expected one of topic, topics, codec, request, reply, error, method, crate"
                        ),
                    ));
                }
            }
            Ok(())
        })?;
        found = Some(out);
    }
    Ok(found)
}
