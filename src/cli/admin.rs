//! `cairn admin`: keys, data nodes and fsck, straight against the metadata store.

use clap::Subcommand;

use super::{CliResult, generate_key};

#[derive(clap::Args, Debug)]
pub struct AdminArgs {
    /// The metadata store, e.g. sqlite://cairn-data/meta.db
    #[arg(long)]
    meta: String,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// S3 access keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Create a key and print its id and secret.
    Create { name: String },
    /// List keys (ids and names, never secrets).
    List,
    /// Delete a key.
    Delete { id: String },
}

pub async fn run_admin(args: AdminArgs) -> CliResult {
    let meta = crate::meta::open(&args.meta).await?;
    match args.command {
        AdminCommand::Key(KeyCommand::Create { name }) => {
            let key = generate_key(&name);
            meta.create_key(&key).await?;
            println!("AccessKeyId: {}", key.id);
            println!("SecretAccessKey: {}", key.secret);
        }
        AdminCommand::Key(KeyCommand::List) => {
            println!("{:<22} {:<25} NAME", "ACCESS KEY ID", "CREATED");
            for key in meta.list_keys().await? {
                println!(
                    "{:<22} {:<25} {}",
                    key.id,
                    crate::s3::range::iso8601(key.created),
                    key.name
                );
            }
        }
        AdminCommand::Key(KeyCommand::Delete { id }) => {
            if !meta.delete_key(&id).await? {
                return Err(format!("no access key {id}").into());
            }
            println!("deleted {id}");
        }
    }
    Ok(())
}
