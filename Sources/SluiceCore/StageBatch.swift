/// Rows handed from one pipeline stage to the next, as text the control plane stores: one
/// line per row, `[place, {field: value, …}]`. Values keep their types (an integer stays an
/// integer, `1.0` stays a float) and fields their order.
public enum StageBatch {
    /// A row and where it came from (file and line), for reject messages downstream.
    public typealias Item = (row: PipelineRow, place: String)

    public static func encode(_ items: [Item]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(items.count * 128)
        for item in items {
            out.append(UInt8(ascii: "["))
            JSONValue.writeString(bytes: item.place.utf8, into: &out)
            out.append(contentsOf: ",{".utf8)
            for (i, f) in item.row.fields.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSONValue.writeString(bytes: f.utf8, into: &out)
                out.append(UInt8(ascii: ":"))
                switch item.row.slots[i] {
                case .null: out.append(contentsOf: "null".utf8)
                case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
                case .int(let n): out.append(contentsOf: String(n).utf8)
                case .double(let d) where d.isFinite:
                    // `description` always has a point or an exponent, so it decodes as a float.
                    out.append(contentsOf: d.description.utf8)
                case .double(let d): JSONValue.writeString(bytes: ValueText.double(d).utf8, into: &out)
                case .text(let s): JSONValue.writeString(bytes: s.utf8, into: &out)
                }
            }
            out.append(contentsOf: "}]\n".utf8)
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: String, name: String) throws(SluiceError) -> [Item] {
        var items: [Item] = []
        var line: Int64 = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            line += 1
            let value: JSONValue
            do { value = try JSONParser.parse(String(raw)) } catch {
                throw SluiceError(.malformedFile, error.description, at: SourceLocation(file: name, line: line))
            }
            guard case .array(let parts) = value, parts.count == 2, case .string(let place) = parts[0], case .object(let members) = parts[1] else {
                throw SluiceError(.malformedFile, "not a stage row", at: SourceLocation(file: name, line: line))
            }
            var row = PipelineRow(fields: [], slots: [])
            for m in members { row[m.key] = RowTransformer.value(m.value) }
            items.append((row, place))
        }
        return items
    }
}
