import Testing
@testable import SluiceCore

@Suite struct BatchBuilderTests {
    let schema = TableSchema(columns: [
        ColumnSchema(name: "id", type: .int64, nullable: false),
        ColumnSchema(name: "price", type: .decimal(precision: 10, scale: 2)),
        ColumnSchema(name: "seen", type: .date),
        ColumnSchema(name: "tags", type: .json),
    ], primaryKey: ["id"])

    @Test func coercesAndRejectsNamingColumnAndValue() {
        var b = BatchBuilder(schema: schema, capacity: 4)
        b.beginRow(line: 2)
        b.setText(0, "1"); b.setText(1, "9.5"); b.setText(2, "2024-01-31"); b.setText(3, "[1, 2]")
        #expect(b.endRow() == nil)
        b.beginRow(line: 3)
        b.setText(0, "2"); b.setText(1, "abc"); b.setText(2, "2024-02-30"); b.setText(3, "{}")
        let r = b.endRow()
        #expect(r?.line == 3)
        #expect(r?.column == "price")
        #expect(r?.message == "column 'price': invalid decimal(10,2) value 'abc'")
        b.beginRow(line: 4)
        b.setNull(0); b.setText(1, "1"); b.setNull(2); b.setNull(3)
        #expect(b.endRow()?.reason == "NULL in a NOT NULL column")
        let batch = b.take()
        #expect(batch.count == 1)
        #expect(batch.lines == [2])
        #expect(batch.row(0) == [.int64(1), .decimal(ExactDecimal(significand: 950, scale: 2)), .date(days: 19753), .json("[1,2]")])
        for c in batch.columns { #expect(c.count == 1) }
    }

    /// A decimal read back from SQLite's REAL storage is the value at its scale, even from a
    /// double one bit off; one too wide for the column is still rejected.
    @Test func decimalsFromDoublesRoundToTheirScale() {
        var b = BatchBuilder(schema: schema, capacity: 4)
        for (line, v) in [(1, 79.2), (2, 79.20000000000001), (3, -0.07), (4, 1e12)] as [(Int64, Double)] {
            b.beginRow(line: line)
            b.setText(0, String(line)); b.setDouble(1, v); b.setNull(2); b.setNull(3)
            if line < 4 { #expect(b.endRow() == nil) } else { #expect(b.endRow()?.column == "price") }
        }
        let batch = b.take()
        #expect((0..<3).map { batch.row($0)[1] } == [.decimal(ExactDecimal(significand: 7920, scale: 2)), .decimal(ExactDecimal(significand: 7920, scale: 2)),
                                                      .decimal(ExactDecimal(significand: -7, scale: 2))])
    }

    @Test func deleteRowsOnlyNeedTheirKey() {
        var b = BatchBuilder(schema: schema, capacity: 2)
        b.beginRow(line: 1, op: .delete)
        b.setText(0, "7"); b.setText(1, "garbage"); b.setText(2, "not a date"); b.setNull(3)
        #expect(b.endRow() == nil)
        #expect(b.batch.ops == [.delete])
        #expect(b.batch.row(0) == [.int64(7), .null, .null, .null])
    }

    @Test func missingFieldsAreNull() {
        var b = BatchBuilder(schema: schema, capacity: 1)
        b.beginRow(line: 1)
        b.setText(0, "1")
        #expect(b.endRow() == nil)
        #expect(b.batch.row(0) == [.int64(1), .null, .null, .null])
    }

    @Test func jsonValuesFollowColumnTypes() {
        let s = TableSchema(columns: [
            ColumnSchema(name: "n", type: .int64), ColumnSchema(name: "flag", type: .bool),
            ColumnSchema(name: "obj", type: .json), ColumnSchema(name: "txt", type: .text),
        ])
        var b = BatchBuilder(schema: s, capacity: 2)
        b.beginRow(line: 1)
        b.setJSON(0, .number("12")); b.setJSON(1, .bool(true))
        b.setJSON(2, .object([JSONMember(key: "a", value: .array([.number("1"), .null]))])); b.setJSON(3, .string("x"))
        #expect(b.endRow() == nil)
        #expect(b.batch.row(0) == [.int64(12), .bool(true), .json("{\"a\":[1,null]}"), .text("x")])
        b.beginRow(line: 2)
        b.setJSON(0, .object([])); b.setJSON(1, .number("1")); b.setNull(2); b.setNull(3)
        #expect(b.endRow()?.reason == "JSON object cannot be int64")
    }

    @Test func opValues() {
        for (t, op) in [("D", RowOp.delete), ("delete", .delete), ("u", .upsert), ("", .upsert), ("I", .upsert)] {
            #expect(withBytes(t) { RowOp.parse($0) } == op)
        }
        #expect(withBytes("X") { RowOp.parse($0) } == nil)
    }
}

@Suite struct InferenceTests {
    func infer(_ values: [String?]) -> ColumnType {
        var o = TypeObserver()
        for v in values { if let v { o.observe(text: v) } else { o.observeNull() } }
        return o.inferred
    }

    @Test func narrowestTypeWins() {
        #expect(infer(["1", "2", nil, "-3"]) == .int64)
        #expect(infer(["1", "2.5"]) == .float64)
        #expect(infer(["true", "False"]) == .bool)
        #expect(infer(["1", "0"]) == .int64)
        #expect(infer(["2024-01-01", "2024-02-02"]) == .date)
        #expect(infer(["2024-01-01", "2024-02-02 10:00"]) == .timestamp)
        #expect(infer(["2024-01-01T10:00:00Z"]) == .timestamptz)
        #expect(infer(["123e4567-e89b-12d3-a456-426614174000"]) == .uuid)
        #expect(infer(["1", "x"]) == .text)
        #expect(infer(["007", "12"]) == .text)  // leading zeros are codes, not numbers
        #expect(infer([nil, nil]) == .text)
        #expect(infer(["NaN"]) == .text)
    }

    @Test func jsonKinds() {
        var o = TypeObserver()
        o.observe(json: .number("1")); o.observe(json: .object([]))
        #expect(o.inferred == .json)
        var p = TypeObserver()
        p.observe(json: .bool(true)); p.observe(json: .null)
        #expect(p.inferred == .bool)
    }
}

@Suite struct JSONTests {
    @Test func parsesAndWritesCompactly() throws {
        let v = try JSONParser.parse(#" { "a" : [1, 2.5e3, -0], "b": {"c": "x\"\u00e9\ud83d\ude00"}, "d": null, "e": true } "#)
        #expect(v.text == #"{"a":[1,2.5e3,-0],"b":{"c":"x\"é😀"},"d":null,"e":true}"#)
        #expect(v.value(at: ["b", "c"]) == .string("x\"é😀"))
        #expect(v.value(at: ["a", "1"]) == .number("2.5e3"))
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\":}", "01", "1.", "\"\\x\"", "\"\u{01}\"", "tru", "{\"a\" 1}", "[1] 2", "\"\\ud800\""])
    func refusesInvalid(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test func limitsNesting() {
        let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
    }

    @Test func refusesInvalidUTF8InStrings() {
        let bytes: [UInt8] = [0x22, 0xC3, 0x28, 0x22]
        #expect(throws: JSONParseError.self) { try bytes.withUnsafeBytes { try JSONParser.parse($0) } }
    }
}

@Suite struct SchemaAndIdentifierTests {
    @Test func quotesAndValidates() throws {
        #expect(try SQLIdentifier.quote("valor") == "\"valor\"")
        #expect(try SQLIdentifier.quote("we\"ird; DROP TABLE x") == "\"we\"\"ird; DROP TABLE x\"")
        #expect(throws: SluiceError.self) { try SQLIdentifier.quote("") }
        #expect(throws: SluiceError.self) { try SQLIdentifier.quote("a\u{0}b") }
        #expect(throws: SluiceError.self) { try SQLIdentifier.quote(String(repeating: "x", count: 64)) }
    }

    @Test func schemaValidation() {
        let dup = TableSchema(columns: [ColumnSchema(name: "a", type: .int64), ColumnSchema(name: "a", type: .text)])
        #expect(throws: SluiceError.self) { try dup.validate() }
        let badKey = TableSchema(columns: [ColumnSchema(name: "a", type: .int64)], primaryKey: ["b"])
        #expect(throws: SluiceError.self) { try badKey.validate() }
        let ok = TableSchema(columns: [ColumnSchema(name: "a", type: .int64)], primaryKey: ["a"]).normalized()
        #expect(ok.columns[0].nullable == false)
    }

    @Test func typeNames() {
        for t: ColumnType in [.int64, .float64, .decimal(precision: 12, scale: 3), .decimal(precision: 38, scale: nil), .bool, .text, .date,
                              .timestamp, .timestamptz, .uuid, .json, .bytes] {
            #expect(ColumnType(parsing: t.name) == t)
        }
        #expect(ColumnType(parsing: "NUMERIC(10, 2)") == .decimal(precision: 10, scale: 2))
        #expect(ColumnType(parsing: "bigint") == .int64)
        #expect(ColumnType(parsing: "decimal(40,2)") == nil)
        #expect(ColumnType(parsing: "flot") == nil)
    }

    @Test func errorsNameWhere() {
        let e = SluiceError(.invalidInput, "bad value", at: SourceLocation(file: "a.csv", line: 12, column: "valor"))
        #expect(e.description == "a.csv:12: column 'valor': bad value")
    }
}
