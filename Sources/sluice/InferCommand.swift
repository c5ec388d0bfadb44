import ArgumentParser
import SluiceConfig
import SluiceCore
import SluiceFormats
import SluiceLoad
import Foundation
import SluiceRuntime

struct InferCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer",
        abstract: "Print the entity inferred from a file, as YAML to paste into sluice.yml.",
        discussion: "Examples:\n  sluice infer vendas.csv --name vendas --key id >> sluice.yml\n  sluice infer orders.parquet"
    )

    @Argument(help: "A CSV, NDJSON, JSON, Parquet or Avro file (.gz accepted for text formats).")
    var file: String

    @Option(help: "Entity name (default: the file name without extensions).")
    var name: String?

    @Option(help: "Primary key column(s), comma-separated.")
    var key: String?

    @Option(help: "Input format: csv, ndjson, json, parquet or avro (default: from the file name or content).")
    var format: SourceFormat?

    @Option(help: "Rows to sample.")
    var rows: Int = SchemaSampler.defaultRows

    @OptionGroup var csv: CSVOptions
    @OptionGroup var deltaVersion: DeltaVersionOptions

    /// A text file: the record grouping its first lines suggest, and its first records.
    static func textEntity(_ input: InputFile, name: String?) throws(SluiceError) -> String {
        var lines: [String] = []
        var reader = TextRecordReader(source: try input.open(), records: .line, fileName: input.path)
        defer { reader.close() }
        while lines.count < 40, let (bytes, _) = try reader.nextRaw() { lines.append(String(decoding: bytes, as: UTF8.self)) }
        let records = TextRecords.guess(lines)
        var base = (input.path as NSString).lastPathComponent
        while let dot = base.lastIndex(of: "."), dot != base.startIndex { base = String(base[..<dot]) }
        var out = "entities:\n  \(name ?? base):\n    format: text\n    record: \(records.yaml)\n    columns:\n      - {name: line, type: text}\n"
        out += "# the first records (a parse step in a pipeline takes them apart):\n"
        var grouped = TextRecordReader(source: try input.open(), records: records, fileName: input.path)
        defer { grouped.close() }
        var shown = 0
        while shown < 3, let (bytes, line) = try grouped.next() {
            out += "#   line \(line):\n" + String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).map { "#     \($0)\n" }.joined()
            shown += 1
        }
        return out
    }

    func run() throws {
        Runtime.bootstrapLogging()
        do {
            let input = try InputFile.inspect(path: try deltaVersion.apply(to: file), format: format)
            if input.format == .text {
                print(try Self.textEntity(input, name: name), terminator: "")
                return
            }
            var dialect = try csv.apply(to: CSVDialect())
            // As a load would: a delimiter nobody gave comes from the file, and the YAML says it.
            if dialect.sniffDelimiter, let d = input.sniffedDelimiter, d != dialect.quote {
                dialect.delimiter = d
                dialect.sniffDelimiter = false
            }
            if dialect.sniffEncoding, dialect.encoding == nil, let e = input.sniffedEncoding {
                dialect.encoding = e
                dialect.sniffEncoding = false
            }
            if dialect.sniffDates, !dialect.localDates, let sniff = try input.sniffDates(dialect: dialect, rows: rows, limits: ReadLimits()) {
                if sniff.dayFirst {
                    dialect.dateFormat = .dayFirst
                    dialect.timestampFormat = .dayFirstTime
                } else if !sniff.ambiguous.isEmpty {
                    // Never guessed: 01/02/2024 is January or February.
                    FileHandle.standardError.write(Data("note: \(sniff.ambiguous.joined(separator: ", ")) hold dates like 01/02/2024 with no day over 12; they stay text unless you declare csv: {date_format: \"%d/%m/%Y\"} (or %m/%d/%Y)\n".utf8))
                }
            }
            let columns = try input.inferColumns(dialect: dialect, rows: rows, exclude: [], limits: ReadLimits())
            // A Delta table is named after its folder.
            var base = ((input.format == .delta ? input.path : file) as NSString).lastPathComponent
            while let dot = base.lastIndex(of: "."), dot != base.startIndex { base = String(base[..<dot]) }
            let keys = key.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } } ?? []
            let entity = Entity(name: name ?? base, schema: TableSchema(columns: columns, primaryKey: keys).normalized(), csv: dialect)
            try entity.schema.validate()
            print(EntityYAML.render(entity, format: input.format), terminator: "")
        } catch let e as SluiceError {
            throw fail(e.description)
        }
    }
}
