//! Reads the OpenAPI document into the model, refusing every construct the generator cannot
//! serve with a message naming the operation and the construct.

use openapiv3::{
    Components, OpenAPI, Operation as OpenApiOperation, Parameter, ParameterSchemaOrContent,
    ReferenceOr, RequestBody, Response, StatusCode,
};

use super::model::{
    resolve, Body, Location, Operation, Param, Reply, Requirement, Spec, Success, SuccessKind, Tag,
    ERROR_TYPES,
};

pub(crate) const JSON: &str = "application/json";
/// Request body content types the generator can hand to dropshot's `TypedBody`.
const BODY_TYPES: &[&str] = &[JSON, "application/x-www-form-urlencoded"];
/// The one security scheme operations may name scopes of; its scopes drive authorization.
const SECURITY_SCHEME: &str = "OAuth2";

/// The model of `spec`, or every reason the generator cannot serve it.
pub(crate) fn read(spec: &OpenAPI) -> Result<Spec, Vec<String>> {
    let mut errors = Vec::new();
    let mut operations = Vec::new();
    for (path, item) in spec.paths.paths.iter() {
        let Some(item) = item.as_item() else {
            errors.push(format!("{path}: external path item references are not supported"));
            continue;
        };
        for (method, op) in item.iter() {
            let reader = OperationReader {
                spec,
                components: spec.components.as_ref(),
                where_: format!("{} {path}", method.to_uppercase()),
                errors: Vec::new(),
            };
            match reader.read(path, method, op, &item.parameters) {
                Ok(op) => operations.push(op),
                Err(mut e) => errors.append(&mut e),
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Spec {
        title: spec.info.title.clone(),
        version: spec.info.version.clone(),
        description: spec.info.description.clone().unwrap_or_default(),
        tags: spec
            .tags
            .iter()
            .map(|t| Tag {
                name: t.name.clone(),
                description: t.description.clone().unwrap_or_default(),
            })
            .collect(),
        operations,
        components: spec.components.clone().unwrap_or_default(),
    })
}

/// Reads one operation, collecting every error in it.
struct OperationReader<'a> {
    spec: &'a OpenAPI,
    components: Option<&'a Components>,
    /// `METHOD /path`, the start of every message.
    where_: String,
    errors: Vec<String>,
}

impl OperationReader<'_> {
    fn error(&mut self, message: impl std::fmt::Display) {
        self.errors.push(format!("{}: {message}", self.where_));
    }

    fn read(
        mut self,
        path: &str,
        method: &str,
        op: &OpenApiOperation,
        path_level: &[ReferenceOr<Parameter>],
    ) -> Result<Operation, Vec<String>> {
        let id = op.operation_id.clone().unwrap_or_default();
        let snake_case = id.starts_with(|c: char| c.is_ascii_lowercase())
            && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !snake_case {
            self.error(format!("operationId {id:?} is not snake_case <resource>_<verb>"));
        }
        let tag = match op.tags.as_slice() {
            [tag] => tag.clone(),
            _ => {
                self.error("needs exactly one tag");
                String::new()
            }
        };
        let parameters = self.parameters(path_level.iter().chain(op.parameters.iter()));
        let body = op.request_body.as_ref().and_then(|b| self.body(b));
        let (responses, success, error_type) = self.responses(op);
        let security = self.security(op);
        let scopes = self.scopes(&security);
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        Ok(Operation {
            id,
            method: method.to_uppercase(),
            path: path.to_string(),
            tag,
            summary: op.summary.clone().unwrap_or_default(),
            description: op.description.clone().unwrap_or_default(),
            parameters,
            body,
            responses,
            success: success.expect("no errors means a success response"),
            error_type: error_type.expect("no errors means an error type"),
            security,
            scopes,
        })
    }

    fn parameters<'p>(
        &mut self,
        all: impl Iterator<Item = &'p ReferenceOr<Parameter>>,
    ) -> Vec<Param> {
        let mut params: Vec<Param> = Vec::new();
        for p in all {
            let (location, data) = match resolve(p, self.components) {
                Ok(Parameter::Path { parameter_data, .. }) => (Location::Path, parameter_data),
                Ok(Parameter::Query { parameter_data, .. }) => (Location::Query, parameter_data),
                Ok(other) => {
                    self.error(format!(
                        "parameter {:?} is in a header or cookie; only path and query \
                         parameters are supported (Authorization belongs to the security scheme)",
                        other.parameter_data_ref().name
                    ));
                    continue;
                }
                Err(e) => {
                    self.error(e);
                    continue;
                }
            };
            let ParameterSchemaOrContent::Schema(schema) = &data.format else {
                self.error(format!("parameter {} uses content, not schema", data.name));
                continue;
            };
            let param = Param {
                name: data.name.clone(),
                location,
                schema: schema.clone(),
                required: data.required,
                description: data.description.clone(),
                example: data
                    .example
                    .clone()
                    .or_else(|| resolve(schema, self.components).ok()?.schema_data.example.clone()),
            };
            match params.iter_mut().find(|p| p.name == param.name && p.location == location) {
                Some(shared) => *shared = param,
                None => params.push(param),
            }
        }
        params
    }

    fn body(&mut self, body: &ReferenceOr<RequestBody>) -> Option<Body> {
        let body = resolve(body, self.components).map_err(|e| self.error(e)).ok()?;
        let (media, content) = match body.content.iter().collect::<Vec<_>>().as_slice() {
            [(media, content)] if BODY_TYPES.contains(&media.as_str()) => (*media, *content),
            _ => {
                self.error(format!("a request body must have one of {BODY_TYPES:?}"));
                return None;
            }
        };
        let Some(schema) = content.schema.clone() else {
            self.error("request body has no schema");
            return None;
        };
        let example = content.example.clone();
        Some(Body { content_type: media.clone(), schema, required: body.required, example })
    }

    /// Every response, the success response and the error type.
    fn responses(
        &mut self,
        op: &OpenApiOperation,
    ) -> (Vec<Reply>, Option<Success>, Option<&'static str>) {
        let mut replies = Vec::new();
        let mut success = None;
        let mut error_schema: Option<String> = None;
        for (code, response) in &op.responses.responses {
            let response = match resolve(response, self.components) {
                Ok(r) => r,
                Err(e) => {
                    self.error(e);
                    continue;
                }
            };
            replies.push(Reply {
                status: code.to_string(),
                description: response.description.clone(),
                content: response
                    .content
                    .iter()
                    .map(|(media, m)| (media.clone(), m.schema.clone()))
                    .collect(),
            });
            match code {
                StatusCode::Code(status @ (200 | 201 | 307)) => {
                    let kind = match status {
                        200 => SuccessKind::Ok,
                        201 => SuccessKind::Created,
                        _ => SuccessKind::TemporaryRedirect,
                    };
                    match self.success(kind, response) {
                        Some(s) if success.is_none() => success = Some(s),
                        Some(_) => self.error("more than one success response"),
                        None => {}
                    }
                }
                StatusCode::Code(400..=599) => {
                    self.error_response(code, response, &mut error_schema)
                }
                other => self.error(format!(
                    "response {other} is not supported (only 200, 201, 307, 4xx and 5xx)"
                )),
            }
        }
        if op.responses.default.is_some() {
            self.error("a default response is not supported");
        }
        if success.is_none() {
            self.error("needs a 200, 201 or 307 response");
        }
        let error_type = ERROR_TYPES
            .iter()
            .find(|(schema, _)| Some(*schema) == error_schema.as_deref())
            .map(|(_, rust)| *rust);
        if error_type.is_none() {
            self.error("needs error responses");
        }
        (replies, success, error_type)
    }

    fn success(&mut self, kind: SuccessKind, response: &Response) -> Option<Success> {
        let body = if response.content.is_empty() {
            None
        } else if response.content.len() == 1 && response.content.contains_key(JSON) {
            response.content[JSON].schema.clone()
        } else {
            self.error(format!("only {JSON} content is supported"));
            return None;
        };
        let only_location = response.headers.keys().collect::<Vec<_>>() == ["Location"];
        let problem = match kind {
            SuccessKind::Ok => None,
            SuccessKind::Created if body.is_none() => Some("a 201 response needs a JSON body"),
            SuccessKind::TemporaryRedirect if body.is_some() => Some("a 307 response has no body"),
            _ if !only_location => {
                Some("a 201 or 307 response must have exactly a Location header")
            }
            _ => None,
        };
        if let Some(problem) = problem {
            self.error(problem);
            return None;
        }
        Some(Success { kind, body })
    }

    /// Checks an error response and that it shares the operation's error schema.
    fn error_response(
        &mut self,
        code: &StatusCode,
        response: &Response,
        error_schema: &mut Option<String>,
    ) {
        let schema = match response.content.get(JSON).and_then(|m| m.schema.as_ref()) {
            Some(ReferenceOr::Reference { reference })
                if ERROR_TYPES.iter().any(|(s, _)| s == reference) =>
            {
                reference.clone()
            }
            _ => {
                return self.error(format!(
                    "error response {code} must be {JSON} with one of the error schemas {:?}",
                    ERROR_TYPES.iter().map(|(s, _)| s).collect::<Vec<_>>()
                ))
            }
        };
        match error_schema {
            Some(known) if *known != schema => {
                self.error(format!("all error responses must share one schema ({known}, {schema})"))
            }
            _ => *error_schema = Some(schema),
        }
    }

    fn security(&mut self, op: &OpenApiOperation) -> Vec<Requirement> {
        let requirements = op.security.as_ref().or(self.spec.security.as_ref());
        let mut security = Vec::new();
        for requirement in requirements.into_iter().flatten() {
            for (scheme, scopes) in requirement {
                if !self.components.is_some_and(|c| c.security_schemes.contains_key(scheme)) {
                    self.error(format!("security scheme {scheme} is not declared"));
                }
                security.push(Requirement { scheme: scheme.clone(), scopes: scopes.clone() });
            }
        }
        security
    }

    /// The OAuth2 scopes of the requirements, each once. Other schemes (the token endpoint's
    /// client authentication) carry no scopes; the operation checks them itself.
    fn scopes(&mut self, security: &[Requirement]) -> Vec<String> {
        let mut scopes: Vec<String> = Vec::new();
        for requirement in security {
            if requirement.scheme != SECURITY_SCHEME {
                if !requirement.scopes.is_empty() {
                    self.error(format!("only {SECURITY_SCHEME} names scopes"));
                }
                continue;
            }
            if requirement.scopes.len() != 1 {
                self.error(
                    "each security requirement must name exactly one scope (PrivX accepts any \
                     one of the listed scopes: write one requirement each)",
                );
            }
            for scope in &requirement.scopes {
                if !scopes.contains(scope) {
                    scopes.push(scope.clone());
                }
            }
        }
        scopes
    }
}
