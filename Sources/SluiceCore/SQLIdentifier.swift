import Foundation
/// The one audited place where names from configuration, files or requests become SQL text.
///
/// Every table and column name is validated here and emitted as a double-quoted identifier
/// with embedded quotes doubled. Values are never spliced into SQL; they are bound.
public enum SQLIdentifier {
    /// PostgreSQL truncates identifiers at 63 bytes; we refuse longer names rather than
    /// letting two long names collide.
    public static let maxBytes = 63

    public static func validate(_ name: String) throws(SluiceError) {
        if name.isEmpty { throw SluiceError(.invalidIdentifier, "an identifier is empty") }
        if name.utf8.count > maxBytes {
            throw SluiceError(.invalidIdentifier, "identifier '\(name.prefix(20))…' is longer than \(maxBytes) bytes")
        }
        for b in name.utf8 where b < 0x20 || b == 0x7F {
            throw SluiceError(.invalidIdentifier, "identifier \(String(reflecting: name)) contains a control character")
        }
    }

    /// `name` as a quoted SQL identifier. Throws for names that fail ``validate(_:)``.
    public static func quote(_ name: String) throws(SluiceError) -> String {
        try validate(name)
        return quoteValidated(name)
    }

    /// Quotes a name that was already validated (e.g. a column of a validated schema).
    public static func quoteValidated(_ name: String) -> String {
        var out = "\""
        for ch in name.unicodeScalars {
            if ch == "\"" { out += "\"\"" } else { out.unicodeScalars.append(ch) }
        }
        out += "\""
        return out
    }
}

extension SQLIdentifier {
    /// Quotes a validated name MySQL's way, with backticks.
    public static func backquoteValidated(_ name: String) -> String {
        "`" + name.replacingOccurrences(of: "`", with: "``") + "`"
    }
}

/// A possibly schema-qualified table name (`registros`, `sales.orders`), validated part by part.
public struct QualifiedName: Sendable, Hashable, CustomStringConvertible {
    public var schema: String?
    public var name: String

    public init(_ text: String) throws(SluiceError) {
        let parts = text.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        if parts.count == 2 {
            try SQLIdentifier.validate(parts[0])
            try SQLIdentifier.validate(parts[1])
            schema = parts[0]
            name = parts[1]
        } else {
            try SQLIdentifier.validate(text)
            name = text
        }
    }

    /// `"schema"."name"` or `"name"` (standard SQL quoting: PostgreSQL, SQLite).
    public var quoted: String {
        (schema.map { SQLIdentifier.quoteValidated($0) + "." } ?? "") + SQLIdentifier.quoteValidated(name)
    }

    /// `` `schema`.`name` `` or `` `name` `` (MySQL's quoting).
    public var backquoted: String {
        (schema.map { SQLIdentifier.backquoteValidated($0) + "." } ?? "") + SQLIdentifier.backquoteValidated(name)
    }

    public var description: String { schema.map { "\($0).\(name)" } ?? name }

    /// The schema of Sluice's own tables on PostgreSQL (jobs, ledgers, runs).
    public static let controlSchema = "sluice"

    /// This name in `schema` when it names none (a target's tables always go to a known
    /// schema, never wherever a session's `search_path` points).
    public func inSchema(_ defaultSchema: String) -> QualifiedName {
        var q = self
        if q.schema == nil { q.schema = defaultSchema }
        return q
    }

    /// Whether this names one of Sluice's own tables (schema `sluice`, or `sluice_...` in
    /// SQLite and MySQL): those are never a load's target.
    public var isSluiceOwn: Bool {
        schema?.lowercased() == Self.controlSchema || name.lowercased().hasPrefix("sluice_")
    }

    /// A load's target table, refused when it is one of Sluice's own.
    public static func target(_ text: String) throws(SluiceError) -> QualifiedName {
        let q = try QualifiedName(text)
        if q.isSluiceOwn {
            throw SluiceError(.invalidArgument, "'\(text)' is one of Sluice's own tables (schema sluice, or named sluice_...); load into another table")
        }
        return q
    }
}

