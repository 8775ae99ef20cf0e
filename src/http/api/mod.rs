//! One file per API: the seed's batch `POST /`, OpenAI's audio API, the page, and the
//! operator's routes (health, readiness, OpenAPI), and live uploads transcribed as they arrive.

pub mod live;
pub mod meta;
pub mod openai;
pub mod page;
pub mod seed;
