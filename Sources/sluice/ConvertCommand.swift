import ArgumentParser
import SluiceCore
import SluiceFormats
import SluiceLoad
import Foundation
import SluiceRuntime
import SluiceConfig

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a file between CSV, NDJSON, JSON, Parquet and Avro.",
        discussion: """
            The columns and types are the input's own (Parquet, Avro) or inferred (CSV, JSON). \
            The output appears only when complete. Rows that do not fit the inferred types are \
            counted and left out.
            
            Examples:
              sluice convert orders.csv orders.parquet --compression zstd
              sluice convert events.parquet events.ndjson
              sluice convert events.csv delta:lake/events --partition-by day      # a Delta table (append; --mode overwrite)
            """
    )

    @Argument(help: "Input file.")
    var input: String

    @Argument(help: "Output file (format from its extension unless --to is given).")
    var output: String

    @Option(help: "Input format (default: from the file's name or content).")
    var format: SourceFormat?

    @Option(help: "Output format: csv, ndjson, parquet or avro.")
    var to: SourceFormat?

    @Option(help: "Compression: Parquet none|snappy|gzip|zstd (default snappy); Avro null|deflate|snappy|zstandard (default deflate).")
    var compression: String?

    @Option(help: "Parquet rows per row group (default: the config's parquet.row_group_rows, else 1,048,576).")
    var rowGroupRows: Int?

    @Flag(inversion: .prefixedNo, help: "Parquet dictionary encoding of text columns.")
    var dictionary = true

    @Option(help: "Parquet logical types: wide (default: uuid as text and time as microseconds, which pyarrow, DuckDB, polars, pandas and Spark all open; also 'spark') or exact (UUID and TIME types).")
    var compat: String?

    @Flag(help: "NDJSON output: write decimals as bare numbers (default: as strings, which every JSON reader keeps exact).")
    var jsonDecimalsAsNumbers = false

    @Flag(help: "Print the summary as JSON.")
    var json = false

    @Option(help: "1: parse and write on one thread; 2: parse on a thread of its own while writing (default: 2 where there are two cores).")
    var threads: Int?

    @Option(help: "Threads parsing the input while one writes (default: 2 where there are two cores): 2 or more cut a big CSV or NDJSON file at line boundaries and parse its pieces at once.")
    var parseThreads: Int?

    @Option(help: "Writing a Delta table (delta:PATH): append (default) or overwrite.")
    var mode: String?

    @Option(help: "Writing a new Delta table: its partition columns, comma-separated.")
    var partitionBy: String?

    @OptionGroup var csv: CSVOptions
    @OptionGroup var deltaVersion: DeltaVersionOptions

    func validate() throws {
        if let r = rowGroupRows, r < 1 { throw ValidationError("--row-group-rows must be at least 1") }
        if let t = threads, !(1...2).contains(t) { throw ValidationError("--threads is 1 or 2") }
        if let p = parseThreads, !(1...64).contains(p) { throw ValidationError("--parse-threads is 1 to 64") }
        if let p = parseThreads, p > 1, threads == 1 { throw ValidationError("--parse-threads needs --threads 2 (parsing apart from writing)") }
    }

    func run() throws {
        Runtime.bootstrapLogging()
        let config: SluiceConfig
        do { config = try SharedOptions.parse([]).loadConfig() } catch { throw fail("\(error)") }
        var options = ConvertOptions()
        options.format = to
        options.parquet = options.parquet.applying(config.parquet)
        if let rowGroupRows { options.parquet.rowGroupRows = rowGroupRows }
        options.parquet.dictionary = dictionary
        options.jsonDecimalsAsNumbers = jsonDecimalsAsNumbers
        if let threads { options.threads = threads }
        if threads == 1 { options.parseThreads = 1 }
        if let parseThreads { options.parseThreads = parseThreads }
        if let compat {
            guard let c = ParquetCompat(setting: compat) else { throw ValidationError("--compat is wide (or spark) or exact") }
            options.parquet.compat = c
        }
        if let c = compression?.lowercased() {
            let outFormat = to ?? SourceFormat.detect(fromName: output)
            if outFormat == .avro {
                guard let codec = AvroReader.Codec(rawValue: c) else { throw ValidationError("Avro compression is null, deflate, snappy or zstandard") }
                options.avroCodec = codec
            } else {
                guard let codec = Parquet.Codec(setting: c) else { throw ValidationError("Parquet compression is none, snappy, gzip or zstd") }
                options.parquet.compression = codec
            }
        }
        do {
            options.csv = try csv.apply(to: CSVDialect())
            let input = try deltaVersion.apply(to: self.input)
            let report: ConvertReport
            if output.hasPrefix("delta:") {
                guard let m = DeltaTableWriter.Mode(rawValue: mode ?? "append") else { throw ValidationError("--mode is append or overwrite") }
                let parts = partitionBy.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } } ?? []
                report = try Converter.runDelta(input: input, inputFormat: format, table: String(output.dropFirst("delta:".count)), mode: m,
                                                partitionBy: parts, options: options, engine: "sluice/\(BuildInfo.version)")
            } else {
                guard mode == nil, partitionBy == nil else { throw ValidationError("--mode and --partition-by are for a Delta table output (delta:PATH)") }
                report = try Converter.run(input: input, inputFormat: format, output: output, options: options)
            }
            if json {
                let enc = JSONEncoder()
                enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try enc.encode(report), as: UTF8.self))
            } else {
                print("wrote \(report.rows) rows to \(output)\(report.version.map { " version \($0)" } ?? "") (\(report.format), \(report.bytesWritten) bytes) in \(String(format: "%.2f", report.readSeconds + report.writeSeconds + report.syncSeconds)) s")
                if report.rejected > 0 {
                    print("left out \(report.rejected) rows that do not fit the inferred types:")
                    for r in report.firstRejects { print("  \(r)") }
                }
            }
        } catch let e as SluiceError {
            throw fail(e.description)
        }
    }
}
