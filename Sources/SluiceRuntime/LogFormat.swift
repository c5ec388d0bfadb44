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
        // Merged only when two sources have something: an access line's own metadata is
        // most often all there is, and a merge builds a new dictionary key by key.
        var all = metadata
        func add(_ more: Logger.Metadata?) {
            guard let more, !more.isEmpty else { return }
            if all.isEmpty { all = more } else { all.merge(more) { $1 } }
        }
        add(metadataProvider?.get())
        add(event.metadata)
        var line = Self.render(format, time: Date(), level: event.level, label: label, message: "\(event.message)", metadata: all)
        line.append(0x0A)
        Self.writeToStandardError(line)
    }

    /// One record as the bytes of a line (no newline), keys in sorted order: rendered straight
    /// to bytes, as the access log writes a line per request.
    static func render(_ format: Format, time: Date, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(128 + message.utf8.count)
        let pairs = metadata.sorted { $0.key < $1.key }
        switch format {
        case .text:
            stamp(time, into: &out)
            out.append(0x20)
            out += level.rawValue.utf8
            out.append(0x20)
            out += label.utf8
            out += ": ".utf8
            out += message.utf8
            for (k, v) in pairs {
                out.append(0x20)
                out += k.utf8
                out.append(UInt8(ascii: "="))
                quoted(text(v), into: &out)
            }
        case .json:
            out += "{\"time\":\"".utf8
            stamp(time, into: &out)
            out += "\",\"level\":".utf8
            JSONValue.writeString(bytes: level.rawValue.utf8, into: &out)
            for (k, v) in [("logger", label), ("message", message)] + pairs.compactMap({ (k, v) in ["time", "level", "logger", "message"].contains(k) ? nil : (k, text(v)) }) {
                out.append(UInt8(ascii: ","))
                JSONValue.writeString(bytes: k.utf8, into: &out)
                out.append(UInt8(ascii: ":"))
                JSONValue.writeString(bytes: v.utf8, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
        return out
    }

    /// A value's text: a string as it is (no interpolation, which copies it), anything else described.
    static func text(_ v: Logger.Metadata.Value) -> String {
        if case .string(let s) = v { return s }
        return "\(v)"
    }

    /// `2026-12-06T20:08:45.958Z` (UTC, milliseconds), without a date formatter: one is
    /// costly to make, and the access log writes a line per request.
    static func stamp(_ time: Date, into out: inout [UInt8]) {
        let from = out.count
        ValueText.timestamp(micros: Int64((time.timeIntervalSince1970 * 1_000_000).rounded(.down)), utc: false, into: &out)
        out[from + 10] = UInt8(ascii: "T")
        out.removeLast(3)  // microseconds to milliseconds
        out.append(UInt8(ascii: "Z"))
    }

    /// `v` as is when it is one plain word, else in double quotes with `"` and `\` escaped.
    static func quoted(_ v: String, into out: inout [UInt8]) {
        // By bytes: the ones that need quotes are ASCII, and every byte of a longer character is above 0x7F.
        let plain = !v.isEmpty && v.utf8.allSatisfy { $0 > 0x20 && $0 != 0x22 && $0 != 0x3D && $0 != 0x5C && $0 != 0x7F }
        if plain { out += v.utf8 } else { JSONValue.writeString(bytes: v.utf8, into: &out) }
    }

    /// Writes the whole line with as few `write` calls as the kernel allows (one, nearly always).
    static func writeToStandardError(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var at = 0
            while at < raw.count {
                let n = write(2, raw.baseAddress! + at, raw.count - at)
                if n > 0 { at += n } else if n < 0 && errno == EINTR { continue } else { return }
            }
        }
    }
}
