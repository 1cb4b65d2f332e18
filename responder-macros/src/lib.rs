//! `#[derive(Handler)]` for kafka-responder: use it through the `kafka-responder`
//! crate, which documents it.
//!
//! Layout (as thiserror's): [`ast`] parses the input and keeps the syn nodes for spans,
//! [`attr`] reads the `#[handler(...)]` attribute, [`valid`] holds every semantic check,
//! [`expand`] writes the code.

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro::TokenStream;

/// Derives `Handler` and `IntoRoutes`; see the `kafka-responder` crate docs.
#[proc_macro_derive(Handler, attributes(handler))]
pub fn derive_handler(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::derive(&input).into()
}
