public import ArgumentParser
import SluiceConfig
import SluiceCore
import SluiceExport
import Foundation
import SluiceRuntime
import SluiceLoad

/// Options every command shares: where the configuration and the database are.
struct SharedOptions: ParsableArguments {
    @Option(name: .long, help: "Configuration file (default: $SLUICE_CONFIG, else ./sluice.yml if present).")
    var config: String?

    @Option(name: .long, help: "SQLite file or postgres:// URL (default: $SLUICE_DATABASE_URL or $SLUICE_DATABASE, else the config's, else ./sluice.db).")
    var database: String?

    @Option(name: .long, help: "Where tables are loaded, if not in --database: a SQLite file, postgres:// or mysql:// URL (default: $SLUICE_TARGET_URL, else the config's `target`).")
    var target: String?

    @Option(name: .long, help: "Where jobs and ledgers live, if not in --database: a SQLite file or postgres:// URL (default: $SLUICE_CONTROL_URL, else the config's `control`).")
    var control: String?

    @Option(name: .long, help: "Log lines as text (key=value, values quoted) or json (one object per line). Default: $SLUICE_LOG_FORMAT, else text.")
    var logFormat: LineLogHandler.Format?

    /// What every command does first: logging to stderr, then the configuration (a mistake
    /// in it ends the command with its message).
    func start() throws -> SluiceConfig {
        Runtime.bootstrapLogging(format: logFormat)
        do { return try loadConfig() } catch { throw fail("\(error)") }
    }

    /// The configuration in effect: the named file, or ./sluice.yml, or defaults.
    func loadConfig() throws -> SluiceConfig {
        let env = ProcessInfo.processInfo.environment
        var cfg: SluiceConfig
        if let path = config ?? env["SLUICE_CONFIG"] {
            cfg = try ConfigReader.load(path: path)
        } else if FileManager.default.fileExists(atPath: "sluice.yml") {
            cfg = try ConfigReader.load(path: "sluice.yml")
        } else {
            cfg = SluiceConfig()
        }
        if let db = database ?? env["SLUICE_DATABASE_URL"] ?? env["SLUICE_DATABASE"] { cfg.database = db }
        if let t = target ?? env["SLUICE_TARGET_URL"] { cfg.target = t }
        if let c = control ?? env["SLUICE_CONTROL_URL"] { cfg.control = c }
        if let s = env["SLUICE_TARGET_SCHEMA"] { cfg.targetSchema = s }
        if let s = env["SLUICE_STATE_DIR"], !s.isEmpty { cfg.stateDir = s }
        if let h = env["SLUICE_HOST"], !h.isEmpty { cfg.server.host = h }
        if let p = env["SLUICE_PORT"] {
            guard let n = Int(p), (0...65_535).contains(n) else { throw SluiceError(.invalidConfig, "SLUICE_PORT must be a port number, not '\(p)'") }
            cfg.server.port = n
        }
        if let w = env["SLUICE_WORKERS"] {
            guard let n = Int(w), (1...1_024).contains(n) else { throw SluiceError(.invalidConfig, "SLUICE_WORKERS must be 1 to 1024, not '\(w)'") }
            cfg.worker.concurrency = n
        }
        return cfg
    }
}

/// CSV dialect overrides from the command line.
struct CSVOptions: ParsableArguments {
    @Option(help: "CSV field delimiter (one character; 'tab' for tab).")
    var delimiter: String?

    @Option(help: "CSV text encoding: utf-8, latin-1 or windows-1252 (default: utf-8, or windows-1252 when the file's first bytes are not UTF-8).")
    var encoding: String?

    @Option(help: "Decimal separator of numbers in CSV (e.g. ',' for 1,5).")
    var decimal: String?

    @Option(help: "Thousands separator numbers in CSV may carry (e.g. '.' for 1.234,56).")
    var thousands: String?

    @Option(help: "How CSV dates are written when not ISO 8601 (e.g. '%d/%m/%Y'; default: ISO, or day first when a day over 12 shows it).")
    var dateFormat: String?

    @Option(help: "How CSV timestamps are written when not ISO 8601 (e.g. '%d/%m/%Y %H:%M:%S').")
    var timestampFormat: String?

    @Option(help: "CSV quote character.")
    var quote: String?

    @Option(name: .customLong("null"), help: "Unquoted CSV text that means NULL (default: empty).")
    var nullToken: String?

    @Flag(help: "The CSV file has no header line; columns are matched by position.")
    var noHeader = false

    var isSet: Bool {
        delimiter != nil || quote != nil || nullToken != nil || noHeader || encoding != nil || decimal != nil || thousands != nil
            || dateFormat != nil || timestampFormat != nil
    }

    func apply(to base: CSVDialect) throws -> CSVDialect {
        var d = base
        func byte(_ s: String, _ what: String) throws -> UInt8 {
            let v = s == "tab" || s == "\\t" ? "\t" : s
            guard v.utf8.count == 1, let b = v.utf8.first, b != 0x0A, b != 0x0D else {
                throw ValidationError("--\(what) must be one ASCII character other than a newline")
            }
            return b
        }
        if let s = delimiter {
            d.delimiter = try byte(s, "delimiter")
            d.sniffDelimiter = false
        }
        if let s = decimal { d.decimal = try byte(s, "decimal") }
        if let s = thousands { d.thousands = try byte(s, "thousands") }
        if d.thousands == d.decimal { throw ValidationError("the decimal and thousands separators must differ") }
        if let e = encoding {
            do { d.encoding = try CSVDialect.encoding(named: e) { SluiceError(.invalidArgument, $0) } } catch { throw ValidationError(error.message) }
            d.sniffEncoding = false
        }
        do {
            if let f = dateFormat { d.dateFormat = try DateFormat(f); d.sniffDates = false }
            if let f = timestampFormat { d.timestampFormat = try DateFormat(f); d.sniffDates = false }
        } catch { throw ValidationError(error.message) }
        if let s = quote { d.quote = try byte(s, "quote") }
        if let s = nullToken { d.nullToken = s }
        if noHeader { d.header = false }
        if d.delimiter == d.quote { throw ValidationError("the quote and the delimiter must differ") }
        return d
    }
}

extension SourceFormat: ExpressibleByArgument {}
extension WriteMode: ExpressibleByArgument {}
extension ExportFormat: ExpressibleByArgument {}

/// Prints one clear error line and exits non-zero.
func fail(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    return ExitCode(1)
}

extension LineLogHandler.Format: ExpressibleByArgument {}

/// Time travel on a Delta table input, as flags (the same as `@v12` / `@TIMESTAMP` on its path).
struct DeltaVersionOptions: ParsableArguments {
    @Option(name: .customLong("version"), help: "A Delta table input: read this version (as PATH@v12).")
    var version: Int64?

    @Option(help: "A Delta table input: read the version current at this time, e.g. 2024-05-01T00:00:00Z (as PATH@TIME).")
    var asOf: String?

    func validate() throws {
        if version != nil && asOf != nil { throw ValidationError("give --version or --as-of, not both") }
        if let v = version, v < 0 { throw ValidationError("--version cannot be negative") }
    }

    /// `path` with the version asked for; an error when it is not a Delta table.
    func apply(to path: String) throws -> String {
        guard version != nil || asOf != nil else { return path }
        guard path.hasPrefix("delta:") || DeltaLocation.isTable(path) else {
            throw ValidationError("--version and --as-of read a Delta table (delta:PATH, or a folder with _delta_log/); '\(path)' is not one")
        }
        guard !path.dropFirst(6).contains("@") else { throw ValidationError("'\(path)' names its version already (@…): drop --version / --as-of") }
        return (path.hasPrefix("delta:") ? path : "delta:" + path) + (version.map { "@v\($0)" } ?? "@" + (asOf ?? ""))
    }
}
