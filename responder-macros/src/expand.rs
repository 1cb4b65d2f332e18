//! Writing the code: `Handler` forwarding to the named method, and `IntoRoutes` with
//! the topics and codec. Everything goes through the facade's hidden `__private` paths.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::DeriveInput;

use crate::ast::Input;
use crate::valid::{Codec, Valid, validate};

pub(crate) fn derive(node: &DeriveInput) -> TokenStream {
    let result = Input::from_syn(node).and_then(|input| {
        let valid = validate(&input)?;
        Ok(expand(&valid))
    });
    match result {
        Ok(tokens) => tokens,
        Err(e) => fallback(node, e),
    }
}

fn expand(v: &Valid<'_>) -> TokenStream {
    let Valid {
        ident,
        topics,
        request,
        reply,
        method,
        krate,
        ..
    } = v;
    let p = quote!(#krate::__private);
    let error = match &v.error {
        Some(e) => quote!(#e),
        None => quote!(#p::ErrorReply),
    };
    // Spanned at the codec's name: an unknown codec type is one error, there.
    let at = v.codec_span;
    let codec = match &v.codec {
        Codec::Json => quote_spanned!(at=> #p::Json),
        Codec::Bincode => quote_spanned!(at=> #p::Bincode),
        Codec::Raw => quote_spanned!(at=> #p::Raw),
        Codec::Custom(path) => quote_spanned!(at=> <#path as ::core::default::Default>::default()),
    };
    // Kafka's naming rules, the runtime's own, evaluated at compile time; a bad name
    // fails the build at its literal.
    let topic_checks = topics.iter().map(|t| {
        // The call is written with the literal's span (only the import is not), so the
        // error points at the literal.
        quote_spanned!(t.span()=> const _: () = {
            use #p::assert_request_topic as check;
            check(#t)
        };)
    });
    // The call carries the method name's span: a missing method is one error, there.
    let call = quote_spanned!(method.span()=> #ident::#method(self, request, cx).await);
    quote! {
        #(#topic_checks)*

        #[automatically_derived]
        impl #p::Handler for #ident {
            type Request = #request;
            type Reply = #reply;
            type Error = #error;

            async fn handle(
                &self,
                request: #request,
                cx: &#p::RequestContext,
            ) -> ::core::result::Result<#reply, #error> {
                #call
            }
        }

        #[automatically_derived]
        impl #p::IntoRoutes for #ident {
            const TOPICS: &'static [&'static str] = &[#(#topics),*];

            fn into_routes(self) -> ::std::vec::Vec<#p::Route> {
                let handler = ::std::sync::Arc::new(self);
                <Self as #p::IntoRoutes>::TOPICS
                    .iter()
                    .map(|topic| #p::Route::new(*topic, #codec, ::std::sync::Arc::clone(&handler)))
                    .collect()
            }
        }
    }
}

/// On error: the compile errors, plus `Handler` and `IntoRoutes` impls (through the
/// attribute's `crate = ...` path, if it can be read) so that code using the type does
/// not fail a second time for the same mistake.
fn fallback(node: &DeriveInput, e: syn::Error) -> TokenStream {
    let errors = e.to_compile_error();
    let ident = &node.ident;
    if !node.generics.params.is_empty() {
        return errors;
    }
    let krate = crate_path(node);
    let p = quote!(#krate::__private);
    quote! {
        #errors

        #[automatically_derived]
        impl #p::Handler for #ident {
            type Request = ();
            type Reply = ();
            type Error = #p::ErrorReply;

            async fn handle(
                &self,
                _request: (),
                _cx: &#p::RequestContext,
            ) -> ::core::result::Result<(), #p::ErrorReply> {
                ::core::unreachable!()
            }
        }

        #[automatically_derived]
        impl #p::IntoRoutes for #ident {
            const TOPICS: &'static [&'static str] = &[];

            fn into_routes(self) -> ::std::vec::Vec<#p::Route> {
                ::core::unreachable!()
            }
        }
    }
}

/// The attribute's `crate = ...` path, read leniently (the attribute may hold the
/// mistake): the other keys' values are skipped, and reading stops at the first thing
/// it cannot read. `::kafka_responder` when there is none.
fn crate_path(node: &DeriveInput) -> syn::Path {
    let mut found = None;
    for a in node.attrs.iter().filter(|a| a.path().is_ident("handler")) {
        let _ = a.parse_nested_meta(|meta| {
            let v = meta.value()?;
            if meta.path.is_ident("crate") {
                found = Some(crate::attr::crate_path(v)?);
            } else if v.peek(syn::LitStr) {
                v.parse::<syn::LitStr>()?;
            } else if v.peek(syn::token::Bracket) {
                v.parse::<syn::ExprArray>()?;
            } else {
                v.parse::<syn::Type>()?;
            }
            Ok(())
        });
    }
    found.unwrap_or_else(crate::attr::default_crate)
}
