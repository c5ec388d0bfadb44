import ArgumentParser
import SluiceCore
import SluiceConfig
import Foundation

/// The `sluice` command. The root must be `@main` in a file not named `main.swift`
/// (ArgumentParser's async root otherwise fails at run time).
@main
struct SluiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluice",
        abstract: "Load files into tables with upsert/delete semantics and exact counts; serve a bulk-ingest API with durable jobs; watch folders, buckets and FTP servers; run scheduled pipelines; export rows to HTTP APIs.",
        discussion: """
            Exit codes (every command):
              0    done; rows Sluice rejected are counted in the summary and kept in its rejects file
              1    failed: nothing was written (a load rolls back whole), or the command could not run
              3    partly done: some files or batches failed (watch --once, export with dead letters)
              4    nothing to do and --fail-if-empty was given (no file matched)
              64   usage error: an unknown command or option, or a bad value
              130  interrupted (Ctrl-C): the load in progress was rolled back
            """,
        version: BuildInfo.line,
        subcommands: [LoadCommand.self, InferCommand.self, ConvertCommand.self, ExportCommand.self, WatchCommand.self, RunCommand.self, RunsCommand.self, ScheduleCommand.self, PipelinesCommand.self, ServeCommand.self, WorkerCommand.self, JobsCommand.self, MigrateCommand.self, GCCommand.self, BenchCommand.self, VersionCommand.self]
    )

    /// Parses and runs; a first word that is close to a command's name is answered with
    /// "did you mean" rather than ArgumentParser's "unexpected arguments".
    static func main() async {
        let args = Array(CommandLine.arguments.dropFirst())
        if [["help"], ["--help"], ["-h"]].contains(args) {
            print(helpMessage())
            print(declaredNames())
            return
        }
        if let first = args.first, !first.hasPrefix("-") {
            let names = configuration.subcommands.compactMap { $0.configuration.commandName } + ["help"]
            if !names.contains(first), let guess = Suggestion.closest(to: first, in: names) {
                FileHandle.standardError.write(Data("error: unknown command '\(first)'; did you mean '\(guess)'? (see sluice --help)\n".utf8))
                Foundation.exit(ExitCode.validationFailure.rawValue)
            }
        }
        await main(nil)
    }

    /// What `sluice.yml` (or `$SLUICE_CONFIG`) declares, for `sluice help`.
    static func declaredNames() -> String {
        guard let options = try? SharedOptions.parse([]), let config = try? options.loadConfig() else {
            return "\nNothing declared: no sluice.yml here (or it does not read; `sluice pipelines validate` says why)."
        }
        var lines = ["", "DECLARED IN \(config.path ?? "sluice.yml"):"]
        let declared: [(String, [String])] = [("entities", Array(config.entities.keys)), ("mappings", Array(config.mappings.keys)),
                                              ("pipelines", Array(config.pipelines.keys)), ("watches", Array(config.watches.keys)),
                                              ("exports", Array(config.exports.keys))]
        for (what, names) in declared where !names.isEmpty {
            lines.append("  \(what): \(names.sorted().joined(separator: ", "))")
        }
        if lines.count == 2 { lines.append("  nothing yet (see README: Entities, Pipelines, Watches, Exports)") }
        return lines.joined(separator: "\n")
    }
}
