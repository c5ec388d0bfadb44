import ArgumentParser

/// The `sluice` command. The root must be `@main` in a file not named `main.swift`
/// (ArgumentParser's async root otherwise fails at run time).
@main
struct SluiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "Load files into tables with upsert/delete semantics and exact counts; serve a bulk-ingest API with durable jobs; watch folders, buckets and FTP servers; run scheduled pipelines; export rows to HTTP APIs.",
        version: "0.1.0",
        subcommands: [LoadCommand.self, InferCommand.self, ConvertCommand.self, ExportCommand.self, WatchCommand.self, RunCommand.self, RunsCommand.self, ScheduleCommand.self, PipelinesCommand.self, ServeCommand.self, WorkerCommand.self, JobsCommand.self, MigrateCommand.self]
    )
}
