//! Errors in Kafka Connect's shape, `{"error_code": N, "message": "..."}`, with its status codes: 404 for
//! an unknown connector, task or path, 409 for a name taken, 400 for a body that is not JSON, not the
//! expected shape, or an invalid config (every field's error listed), 405 for a wrong method. A body
//! that is not JSON gets 400 (some Kafka versions answer 500: a client error is not the server's).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::json;
use sluice_core::runtime::{ControlError, WorkerError};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.status.as_u16(), "message": self.message});
        (self.status, Json(body)).into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> ApiError {
        let status = match &e {
            ControlError::NotFound(_) | ControlError::TaskNotFound { .. } => StatusCode::NOT_FOUND,
            ControlError::Exists(_) => StatusCode::CONFLICT,
            ControlError::Invalid(config) => {
                let count = config.issues.len();
                let errors: Vec<String> = config.issues.iter().map(ToString::to_string).collect();
                return ApiError::bad_request(format!(
                    "Connector configuration is invalid and contains the following {count} error(s):\n{}",
                    errors.join("\n")
                ));
            }
            ControlError::Worker(WorkerError::UnknownClass { .. }) => StatusCode::BAD_REQUEST,
            ControlError::Worker(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ControlError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
            // Kafka answers 500 when a connector's alterOffsets throws; the offsets are the client's
            // to fix, so Sluice says 400.
            ControlError::NotStopped(_) | ControlError::BadOffsets(_) => StatusCode::BAD_REQUEST,
            ControlError::Offsets { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

/// A JSON body, refused in Kafka Connect's shape when it is not JSON or not the expected shape.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(body)) => Ok(Body(body)),
            Err(rejection) => Err(rejected(rejection)),
        }
    }
}

fn rejected(rejection: JsonRejection) -> ApiError {
    let message = match &rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "the request body must be JSON (Content-Type: application/json)".to_owned()
        }
        JsonRejection::JsonSyntaxError(e) => format!("the request body is not valid JSON: {e}"),
        JsonRejection::JsonDataError(e) => {
            format!("the request body does not have the expected shape: {e}")
        }
        other => format!("cannot read the request body: {other}"),
    };
    ApiError::bad_request(message)
}

pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "HTTP 404 Not Found")
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "HTTP 405 Method Not Allowed",
    )
}
