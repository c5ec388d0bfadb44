public import SluiceCore

/// Entry points for fuzzing the binary readers: open the bytes and read every row of
/// every column, with the schema the file declares. Hostile input must end in a thrown
/// ``SluiceError`` (returned here), never a crash, a hang, or an outsized allocation.
/// `steps` fuzzes the expression language and pipeline steps (``StepFuzzTarget``).
public enum FuzzTargets {
    /// The targets by name, as `sluice-fuzz` and `scripts/fuzz.sh` call them.
    public static let names = ["parquet", "avro", "steps"]

    /// Runs the target called `name` over one input.
    public static func run(_ name: String, _ bytes: [UInt8]) {
        switch name {
        case "avro": avro(bytes)
        case "steps": StepFuzzTarget.run(bytes)
        default: parquet(bytes)
        }
    }

    /// Reads a Parquet file completely; the error, if it failed.
    @discardableResult
    public static func parquet(_ bytes: [UInt8], batchRows: Int = 1000) -> SluiceError? {
        do throws(SluiceError) {
            let file = try ParquetFile(source: MemoryRandomAccess(bytes), fileName: "fuzz.parquet")
            let spec = ReadSpec(schema: TableSchema(columns: file.schema.columns), limits: ReadLimits(batchRows: batchRows), fileName: "fuzz.parquet")
            let reader = try ParquetBatchReader(file: file, spec: spec)
            while try reader.next() != nil {}
            return nil
        } catch {
            return error
        }
    }

    /// Reads an Avro object container file completely; the error, if it failed.
    @discardableResult
    public static func avro(_ bytes: [UInt8], batchRows: Int = 1000) -> SluiceError? {
        do throws(SluiceError) {
            let file = try AvroReader(source: MemoryChunkReader(bytes, chunkSize: 4096), fileName: "fuzz.avro")
            let spec = ReadSpec(schema: TableSchema(columns: file.columns), limits: ReadLimits(batchRows: batchRows), fileName: "fuzz.avro")
            let reader = try AvroBatchReader(file: file, spec: spec)
            while try reader.next() != nil {}
            return nil
        } catch {
            return error
        }
    }
}
