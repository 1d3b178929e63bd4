//! Query-string parsing shared by the endpoints: unknown parameters and bad values
//! are 400s that name the parameter.

use http::StatusCode;
use runtime::http::Problem;
use serde::de::DeserializeOwned;

pub fn parse<T: DeserializeOwned>(query: Option<&str>) -> Result<T, Problem> {
    serde_urlencoded::from_str(query.unwrap_or("")).map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!("query string: {e}"),
        )
    })
}

pub fn bad_parameter(name: &str, problem: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::BAD_REQUEST,
        "bad_query",
        format!("parameter `{name}`: {}", problem.into()),
    )
    .with_detail("parameter", name)
}
