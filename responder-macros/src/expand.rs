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
    let codec = match v.codec {
        Codec::Json => quote!(#p::Json),
        Codec::Bincode => quote!(#p::Bincode),
        Codec::Raw => quote!(#p::Raw),
    };
    // The call carries the method name's span: a missing method is one error, there.
    let call = quote_spanned!(method.span()=> #ident::#method(self, request, cx).await);
    quote! {
        #[automatically_derived]
        #[#p::async_trait]
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
                    .map(|topic| #p::Route::new(*topic, #codec(::std::sync::Arc::clone(&handler))))
                    .collect()
            }
        }
    }
}

/// On error: the compile errors, plus an `IntoRoutes` impl so that code using the type
/// does not fail a second time for the same mistake.
fn fallback(node: &DeriveInput, e: syn::Error) -> TokenStream {
    let errors = e.to_compile_error();
    let ident = &node.ident;
    if !node.generics.params.is_empty() {
        return errors;
    }
    quote! {
        #errors

        #[automatically_derived]
        impl ::kafka_responder::__private::IntoRoutes for #ident {
            const TOPICS: &'static [&'static str] = &[];

            fn into_routes(self) -> ::std::vec::Vec<::kafka_responder::__private::Route> {
                ::core::unreachable!()
            }
        }
    }
}
