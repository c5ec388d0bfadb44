public import Logging
import SluiceCore
import Foundation

/// One line per log record on stderr: `text` (time, level, message, then `key=value` with
/// values quoted when they hold spaces, quotes or `=`) or `json` (one object per line, for
/// log shippers). Chosen by `--log-format` or `SLUICE_LOG_FORMAT`; the level by `LOG_LEVEL`.
public struct LineLogHandler: LogHandler {
    public enum Format: String, Sendable, CaseIterable { case text, json }

    public let label: String
    public let format: Format
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    /// Metadata added to every record (the current trace and span ids).
    public var metadataProvider: Logger.MetadataProvider?

    public init(label: String, format: Format) {
        self.label = label
        self.format = format
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty { all.merge(provided) { $1 } }
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let line = Self.render(format, time: Date(), level: event.level, label: label, message: "\(event.message)", metadata: all)
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// One record as a line (no newline), keys in sorted order.
    static func render(_ format: Format, time: Date, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> String {
        let stamp = Self.stamp(time)
        let pairs = metadata.sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") }
        switch format {
        case .text:
            var s = "\(stamp) \(level) \(label): \(message)"
            for (k, v) in pairs { s += " \(k)=\(quoted(v))" }
            return s
        case .json:
            var fields: [(String, String)] = [("time", stamp), ("level", level.rawValue), ("logger", label), ("message", message)]
            fields += pairs.filter { !["time", "level", "logger", "message"].contains($0.0) }
            return "{" + fields.map { "\(jsonString($0.0)):\(jsonString($0.1))" }.joined(separator: ",") + "}"
        }
    }

    /// `2026-12-06T20:08:45.958Z` (UTC, milliseconds), without a date formatter: one is
    /// costly to make, and the access log writes a line per request.
    static func stamp(_ time: Date) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(27)
        ValueText.timestamp(micros: Int64((time.timeIntervalSince1970 * 1_000_000).rounded(.down)), utc: false, into: &out)
        out[10] = UInt8(ascii: "T")
        out.removeLast(3)  // microseconds to milliseconds
        out.append(UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }

    /// `v` as is when it is one plain word, else in double quotes with `"` and `\` escaped.
    static func quoted(_ v: String) -> String {
        let plain = !v.isEmpty && v.unicodeScalars.allSatisfy { $0.value > 0x20 && $0 != "\"" && $0 != "=" && $0 != "\\" && $0.value != 0x7f }
        return plain ? v : jsonString(v)
    }

    /// A JSON string literal (the core's writer: quotes, backslashes and control characters escaped).
    static func jsonString(_ v: String) -> String {
        var out: [UInt8] = []
        JSONValue.writeString(bytes: v.utf8, into: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
