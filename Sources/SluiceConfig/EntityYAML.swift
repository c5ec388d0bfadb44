public import SluiceCore

/// Renders an entity as the YAML `sluice.yml` accepts (what `sluice infer` prints).
public enum EntityYAML {
    /// A YAML scalar, quoted when plain style could be misread.
    static func scalar(_ s: String) -> String {
        let plainSafe = !s.isEmpty && s.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-" }
            && !["true", "false", "yes", "no", "null", "on", "off", "~"].contains(s.lowercased())
            && !(s.first?.isNumber ?? false) && s.first != "-"
        if plainSafe { return s }
        var out = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out + "\""
    }

    public static func render(_ e: Entity, format: SourceFormat?) -> String {
        var lines: [String] = ["entities:", "  \(scalar(e.name)):"]
        if e.table != e.name { lines.append("    table: \(scalar(e.table))") }
        if !e.schema.primaryKey.isEmpty { lines.append("    primary_key: [\(e.schema.primaryKey.map(scalar).joined(separator: ", "))]") }
        if let mode = e.mode { lines.append("    mode: \(mode.rawValue)") }
        if e.opColumn != "op" { lines.append("    op_column: \(scalar(e.opColumn))") }
        if let format { lines.append("    format: \(format.rawValue)") }
        if format == .csv && e.csv != CSVDialect() {
            let d = e.csv
            var encoding = d.encoding.map { ", encoding: \($0.rawValue)" } ?? ""
            if d.decimal != UInt8(ascii: ".") { encoding += ", decimal: \(scalar(String(UnicodeScalar(d.decimal))))" }
            if let t = d.thousands { encoding += ", thousands: \(scalar(String(UnicodeScalar(t))))" }
            if let f = d.dateFormat { encoding += ", date_format: \(scalar(f.pattern))" }
            if let f = d.timestampFormat { encoding += ", timestamp_format: \(scalar(f.pattern))" }
            lines.append("    csv: {delimiter: \(scalar(String(UnicodeScalar(d.delimiter)))), quote: \(scalar(String(UnicodeScalar(d.quote)))), null: \(scalar(d.nullToken)), header: \(d.header)\(encoding)}")
        }
        lines.append("    columns:")
        for c in e.schema.columns {
            var parts = ["name: \(scalar(c.name))", "type: \(c.type.name.contains(",") ? scalar(c.type.name) : c.type.name)"]
            if !c.nullable { parts.append("nullable: false") }
            if let s = c.source, s != c.name { parts.append("from: \(scalar(s))") }
            lines.append("      - {\(parts.joined(separator: ", "))}")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
