//! Every semantic check, each error pointing at the offending token.

use syn::{Data, Ident, LitStr, Path, Type};

use crate::ast::Input;

/// A checked input: everything the expansion needs.
pub(crate) struct Valid<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) topics: Vec<LitStr>,
    pub(crate) codec: Codec,
    /// Where the codec is named (the derive's input when it is not).
    pub(crate) codec_span: proc_macro2::Span,
    pub(crate) request: Type,
    pub(crate) reply: Type,
    pub(crate) error: Option<Type>,
    pub(crate) method: Ident,
    pub(crate) krate: Path,
}

/// The route's codec: one the facade exports, or a type of the user's (built with
/// `Default::default()`).
pub(crate) enum Codec {
    Json,
    Bincode,
    Raw,
    Custom(Path),
}

/// Collects errors so the user sees all of them at once.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }
}

pub(crate) fn validate<'a>(input: &'a Input<'a>) -> syn::Result<Valid<'a>> {
    let node = input.original;
    let mut errors = Errors::default();
    if let Data::Union(u) = &node.data {
        errors.push(syn::Error::new_spanned(
            u.union_token,
            "#[derive(Handler)] supports structs and enums, not unions",
        ));
    }
    if !node.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &node.generics,
            "#[derive(Handler)] does not support generic types: implement `Handler` by hand, or derive on a concrete wrapper",
        ));
    }
    let Some(attr) = &input.attr else {
        errors.push(syn::Error::new_spanned(
            input.ident,
            "missing #[handler(...)] attribute, e.g. #[handler(topic = \"requests\", codec = json, request = Req, reply = Rep, method = answer)]",
        ));
        return Err(errors.0.expect("an error was pushed"));
    };
    if attr.topics.is_empty() {
        errors.push(syn::Error::new_spanned(
            input.ident,
            "missing `topic = \"...\"` (or `topics = [..]`): which request topic does this handler answer?",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for t in &attr.topics {
        // Kafka's naming rules are checked by the expansion, in a constant that calls
        // the runtime's own rules (`topic::assert_request_topic`).
        if !seen.insert(t.value()) {
            errors.push(syn::Error::new(t.span(), "this topic is listed twice"));
        }
    }
    let codec = match &attr.codec {
        None => {
            errors.push(syn::Error::new_spanned(
                input.ident,
                "missing `codec = ...`: json, bincode, raw, or the path of a type that implements `Codec<Request, Reply>` and `Default`",
            ));
            Codec::Json
        }
        Some(c) if c.is_ident("json") => Codec::Json,
        Some(c) if c.is_ident("bincode") => Codec::Bincode,
        Some(c) if c.is_ident("raw") => Codec::Raw,
        Some(c) => Codec::Custom(c.clone()),
    };
    let request = attr.request.clone();
    let reply = attr.reply.clone();
    if request.is_none() {
        errors.push(syn::Error::new_spanned(
            input.ident,
            "missing `request = Type`: the type requests decode into",
        ));
    }
    if reply.is_none() {
        errors.push(syn::Error::new_spanned(
            input.ident,
            "missing `reply = Type`: the type the handler answers with",
        ));
    }
    let method = match &attr.method {
        None => {
            errors.push(syn::Error::new_spanned(
                input.ident,
                "missing `method = name`: the inherent `async fn name(&self, request, cx: &RequestContext) -> Result<Reply, Error>` that answers",
            ));
            None
        }
        Some(m) if m == "handle" => {
            errors.push(syn::Error::new(
                m.span(),
                "name the answering method something other than `handle`: `Handler::handle` is the generated trait method, and calling it would recurse",
            ));
            None
        }
        Some(m) => Some(m.clone()),
    };
    if let Some(e) = errors.0 {
        return Err(e);
    }
    Ok(Valid {
        ident: input.ident,
        topics: attr.topics.clone(),
        codec,
        codec_span: attr
            .codec
            .as_ref()
            .map_or_else(|| input.ident.span(), syn::spanned::Spanned::span),
        request: request.expect("checked"),
        reply: reply.expect("checked"),
        error: attr.error.clone(),
        method: method.expect("checked"),
        krate: attr
            .krate
            .clone()
            .unwrap_or_else(crate::attr::default_crate),
    })
}
