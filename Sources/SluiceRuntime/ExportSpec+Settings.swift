public import SluiceConfig
public import SluiceExport
import SluiceQueue
import SluiceLoad
import SluiceStorage
public import SluiceCore
import Crypto
public import Foundation

extension ExportSpec {
    /// The export declared as `name` under `exports:`, every default applied (what a pipeline's
    /// `export:` sink and `sluice export NAME` deliver).
    public static func declared(_ name: String, config: SluiceConfig,
                                environment: [String: String] = ProcessInfo.processInfo.environment) throws(SluiceError) -> ExportSpec {
        try from(try settings(name, config: config), config: config, environment: environment)
    }

    /// The settings declared as `name` under `exports:`, or an error listing the declared ones.
    public static func settings(_ name: String, config: SluiceConfig) throws(SluiceError) -> ExportSettings {
        guard let settings = config.exports[name] else {
            throw SluiceError(.invalidConfig, "no export '\(name)' in \(config.path ?? "sluice.yml")\(Suggestion.hint(for: name, in: config.exports.keys)) (declared: \(config.exports.keys.sorted().joined(separator: ", ")))")
        }
        return settings
    }

    /// A spec from settings (declared ones, or command-line options laid over them); each
    /// default lives once, in ``ExportSpec`` and ``DeliveryPolicy``.
    public static func from(_ d: ExportSettings, config: SluiceConfig,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws(SluiceError) -> ExportSpec {
        guard d.from != nil || d.query != nil, let key = d.key, let url = d.to else {
            throw SluiceError(.invalidArgument, "give --from (or --query), --key and --to, or the name of an export declared in sluice.yml")
        }
        if d.from != nil && d.query != nil { throw SluiceError(.invalidArgument, "give --from or --query, not both") }
        var spec = ExportSpec(source: ExportSource(table: d.from, query: d.query, filter: d.filter, key: key), url: url,
                              spoolDir: spoolDir(for: url, stateDir: config.stateDir))
        if let storage = try SharedStorage.configured(config) {
            spec.storage = storage
            spec.storageFolder = "exports/" + (spec.spoolDir as NSString).lastPathComponent
        }
        spec.resendChanged = d.resendChanged == true
        if let f = d.format {
            guard let format = ExportFormat(rawValue: f) else { throw SluiceError(.invalidConfig, "unknown export format '\(f)' (csv, ndjson or parquet)") }
            spec.format = format
        }
        spec.parquet = spec.parquet.applying(config.parquet)
        spec.batchSize = d.batchSize ?? spec.batchSize
        spec.concurrency = d.concurrency ?? spec.concurrency
        spec.fieldName = d.rawBody == true ? nil : (d.field ?? spec.fieldName)
        spec.gzip = d.gzip == true
        spec.requestsPerSecond = d.rate
        spec.rowsPerSecond = d.rowsPerSecond
        spec.timeoutSeconds = d.timeout ?? spec.timeoutSeconds
        spec.policy.maxAttempts = d.maxAttempts ?? spec.policy.maxAttempts
        spec.formFields = d.form.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        spec.headers = d.headers.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        if let tokenEnv = d.tokenEnv {
            guard let t = environment[tokenEnv], !t.isEmpty else { throw SluiceError(.invalidConfig, "$\(tokenEnv) is not set") }
            spec.headers.append(("Authorization", "Bearer \(t)"))
        }
        return spec
    }

    /// The spool folder of one receiver, under the configured state folder.
    public static func spoolDir(for url: String, stateDir: String) -> String {
        let digest = SHA256.hash(data: Data(url.utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
        return (stateDir as NSString).appendingPathComponent("exports/\(digest)")
    }
}
