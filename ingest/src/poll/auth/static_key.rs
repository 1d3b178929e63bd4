//! Credentials that never change: a key or token in a header (`api_key_header`,
//! `bearer`, `basic`) or in the query (`api_key_query`), and none at all.

use futures::future::BoxFuture;

use super::{AuthContext, Authenticator, Credentials};

pub struct Anonymous;

impl Authenticator for Anonymous {
    fn credentials<'a>(
        &'a self,
        _ctx: &'a AuthContext<'a>,
    ) -> BoxFuture<'a, Result<Credentials, String>> {
        Box::pin(async { Ok(Credentials::default()) })
    }
}

pub struct HeaderKey {
    pub header: String,
    pub value: String,
}

impl Authenticator for HeaderKey {
    fn credentials<'a>(
        &'a self,
        _ctx: &'a AuthContext<'a>,
    ) -> BoxFuture<'a, Result<Credentials, String>> {
        Box::pin(async { Credentials::header(&self.header, &self.value) })
    }
}

pub struct QueryKey {
    pub param: String,
    pub key: String,
}

impl Authenticator for QueryKey {
    fn credentials<'a>(
        &'a self,
        _ctx: &'a AuthContext<'a>,
    ) -> BoxFuture<'a, Result<Credentials, String>> {
        Box::pin(async {
            Ok(Credentials {
                headers: vec![],
                query: vec![(self.param.clone(), self.key.clone())],
            })
        })
    }
}
