import Testing
@testable import SluiceCore
@testable import SluiceFormats

/// The writer's quoting check reads eight bytes at a time: a delimiter, quote, LF or CR at
/// any offset of a field of any length is quoted, and nothing else is.
@Suite struct CSVWriterQuotingTests {
    @Test(arguments: [UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "\t")])
    func everySpecialByteAtEveryOffsetIsQuoted(delimiter: UInt8) {
        var dialect = CSVDialect()
        dialect.delimiter = delimiter
        let writer = CSVWriter(dialect: dialect)
        for length in 1...40 {
            let plain = [UInt8](repeating: UInt8(ascii: "x"), count: length)
            #expect(!plain.withUnsafeBytes { writer.needsQuotes(raw: $0) })
            for at in 0..<length {
                for special in [delimiter, UInt8(ascii: "\""), 0x0A, 0x0D] {
                    var field = plain
                    field[at] = special
                    #expect(field.withUnsafeBytes { writer.needsQuotes(raw: $0) }, "\(length) \(at) \(special)")
                    #expect(field.withUnsafeBytes { writer.needsQuotes(raw: $0) } == Self.bytewise(field, delimiter))
                }
            }
        }
        #expect(Array("".utf8).withUnsafeBytes { writer.needsQuotes(raw: $0) }, "an empty string is quoted (NULL is not)")
        // Bytes that differ from a special one by the high bit only are not mistaken for it.
        let high = [UInt8](repeating: delimiter | 0x80, count: 16) + [0x8A, 0x8D, 0xA2]
        #expect(!high.withUnsafeBytes { writer.needsQuotes(raw: $0) })
    }

    /// The quoting rule one byte at a time (the default dialect's quote and NULL token).
    static func bytewise(_ v: [UInt8], _ delimiter: UInt8) -> Bool {
        v.isEmpty || v.contains { $0 == delimiter || $0 == UInt8(ascii: "\"") || $0 == 0x0A || $0 == 0x0D }
    }

    /// A dialect whose delimiter can appear in a number's text quotes numbers as it must.
    @Test func numbersAreQuotedWhereTheDelimiterCanBeInThem() throws {
        var dot = CSVDialect()
        dot.delimiter = UInt8(ascii: ".")
        var batch = BatchBuilder(schema: TableSchema(columns: [ColumnSchema(name: "v", type: .float64)]), capacity: 1)
        batch.beginRow(line: 1)
        batch.setDouble(0, 2.5)
        #expect(batch.endRow() == nil)
        let rows = batch.take()
        var writer = CSVWriter(dialect: dot)
        writer.writeRow(rows, 0)
        #expect(String(decoding: writer.output, as: UTF8.self) == "\"2.5\"\n")
        var comma = CSVWriter()
        comma.writeRow(rows, 0)
        #expect(String(decoding: comma.output, as: UTF8.self) == "2.5\n")
    }

    /// Integral doubles are written as integers, and -0 keeps its sign (PostgreSQL's text, and
    /// what a text COPY must send for the binary one to agree).
    @Test func negativeZeroKeepsItsSign() {
        var batch = BatchBuilder(schema: TableSchema(columns: [ColumnSchema(name: "v", type: .float64)]), capacity: 4)
        for v in [-0.0, 0.0, -3.0, 2.5] {
            batch.beginRow(line: 1)
            batch.setDouble(0, v)
            #expect(batch.endRow() == nil)
        }
        let rows = batch.take()
        var writer = CSVWriter()
        for i in 0..<4 { writer.writeRow(rows, i) }
        #expect(String(decoding: writer.output, as: UTF8.self) == "-0\n0\n-3\n2.5\n")
        #expect(ValueText.double(-0.0) == "-0" && ValueText.double(0.0) == "0" && Double(ValueText.double(-0.0))?.sign == .minus)
    }
}
