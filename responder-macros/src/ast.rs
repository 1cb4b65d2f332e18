//! The derive input, parsed: the original syn nodes are kept so errors point at them.

use syn::{DeriveInput, Ident};

use crate::attr::{self, Attr};

/// A type deriving `Handler`.
pub(crate) struct Input<'a> {
    pub(crate) original: &'a DeriveInput,
    pub(crate) ident: &'a Ident,
    pub(crate) attr: Option<Attr>,
}

impl<'a> Input<'a> {
    pub(crate) fn from_syn(node: &'a DeriveInput) -> syn::Result<Self> {
        Ok(Input {
            original: node,
            ident: &node.ident,
            attr: attr::parse(&node.attrs)?,
        })
    }
}
