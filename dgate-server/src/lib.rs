pub mod config;
pub mod screen;
pub mod hub;
