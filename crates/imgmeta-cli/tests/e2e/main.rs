//! End-to-end tests: the real API and worker against the real PostgreSQL and RabbitMQ, with
//! a local HTTP server serving the fixture images. Each test gets its own database and queues.

mod artifacts;
mod batches;
mod bombs;
mod console;
mod content_cache;
mod deployment;
mod examples;
mod fanin;
mod helpers;
mod hostile;
mod inference;
mod jobs;
mod legacy;
mod logs;
mod observability;
mod openapi;
mod processes;
mod reliability;
mod security;
mod sessions;
mod startup;
mod tenancy;
mod traces;
mod uploads;
mod url_cache;
mod validation;
mod webhooks;
