"""Apache Kafka for the embedded broker: install it once, then find its jars and a Java to run them.

`install()` puts the broker's jars, and those of Kafka's command-line tools, in the user's cache. With Maven
on the PATH they come from Maven Central (and stay in ~/.m2, which CI caches); without it, from Apache's
release tarball, checked against its published SHA-512; with `source`, from an offline bundle's folder
(`flashsale bundle`). `FLASHSALE_KAFKA_HOME` points at a Kafka you already have instead.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import httpx

from flashsale.stack.processes import StackError

KAFKA_VERSION = "4.1.1"  # pinned Apache Kafka 4.x, the Scala 2.13 build
SCALA = "2.13"
RELEASE = f"kafka_{SCALA}-{KAFKA_VERSION}"  # the tarball's name and its top folder
ARCHIVE = f"https://archive.apache.org/dist/kafka/{KAFKA_VERSION}/"  # every release, forever (mirrors drop old ones)
POM = Path(__file__).with_name("kafka-pom.xml")
TOOLS_JAR = "kafka-tools-[0-9]*.jar"  # Kafka's command-line tools (not kafka-tools-api-*.jar)
NOT_INSTALLED = ("Apache Kafka is not installed: run `flashsale kafka install`, "
                 "or set FLASHSALE_KAFKA_HOME to a Kafka release folder.")


def cache() -> Path:
    """Where `install()` puts the jars: $XDG_CACHE_HOME/flashsale/kafka-<version>/libs."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "flashsale" / f"kafka-{KAFKA_VERSION}" / "libs"


def jars() -> Path:
    """The folder of jars to run: FLASHSALE_KAFKA_HOME if set, else the cache."""
    if home := os.environ.get("FLASHSALE_KAFKA_HOME"):
        for folder in (Path(home) / "libs", Path(home)):  # a release folder, or a folder of jars
            if _has_kafka(folder):
                return folder
        raise StackError(f"FLASHSALE_KAFKA_HOME={home} holds no Kafka jars (libs/kafka_{SCALA}-*.jar): point it at "
                         f"a Kafka release folder, or unset it and run `flashsale kafka install`.")
    if not _has_kafka(cache()):
        raise StackError(NOT_INSTALLED)
    return cache()


def version(folder: Path) -> str:
    """The Kafka version of a folder of jars, read from its kafka_2.13-<version>.jar."""
    names = sorted(path.name for path in folder.glob(f"kafka_{SCALA}-*.jar"))
    return min(names, key=len).removeprefix(f"kafka_{SCALA}-").removesuffix(".jar") if names else "unknown"


def install(quiet: bool = False, source: Path | None = None) -> Path:
    """Put Kafka in the user's cache (once) and return the folder of jars; from `source`, a bundle, if given."""
    if os.environ.get("FLASHSALE_KAFKA_HOME"):
        folder = jars()
        _say(quiet, f"using FLASHSALE_KAFKA_HOME: Apache Kafka {version(folder)} in {folder}")
        return folder
    target = cache()
    if _has_kafka(target) and has_tools(target):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Build in a temporary folder beside the target, rename it at the end: a half-done install never counts.
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".install-") as work:
            staged = Path(work) / "libs"
            staged.mkdir()
            if source is not None:
                _from_bundle(source, staged)
            elif shutil.which("mvn"):
                _from_maven(staged, quiet)
            else:
                _from_release(staged, quiet)
            if not _has_kafka(staged):
                raise StackError(f"the download held no kafka_{SCALA}-*.jar: set FLASHSALE_KAFKA_HOME to a Kafka "
                                 f"release folder instead.")
            _move(staged, target)
    except OSError as error:
        raise StackError(f"{target.parent} could not be written ({error}): make it writable, or set "
                         f"XDG_CACHE_HOME to a folder you can write.") from None
    return target


def java() -> str:
    """The path of a Java 17 or newer: JAVA_HOME/bin/java, else `java` on the PATH."""
    home = os.environ.get("JAVA_HOME")
    candidate = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").is_file() else None
    candidate = candidate or shutil.which("java")
    fix = "install Java 17 or newer (Debian: `apt-get install openjdk-17-jre-headless`) or set JAVA_HOME to one"
    if not candidate:
        raise StackError(f"Java was not found, and Apache Kafka needs it: {fix}.")
    try:
        done = subprocess.run([candidate, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise StackError(f"{candidate} -version did not run ({error}): {fix}.") from None
    # `java -version` writes to stderr: openjdk version "17.0.15" 2025-04-15 (measured, Debian 12);
    # older ones say "1.8.0_392", early-access ones "21-ea" or just "21".
    found = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    major = (int(found[2] or 0) if found[1] == "1" else int(found[1])) if found else 0
    if major < 17:
        seen = f"is Java {major}" if major else "did not say which Java it is"
        raise StackError(f"{candidate} {seen}, and Apache Kafka {KAFKA_VERSION} needs Java 17 or newer: {fix}.")
    return candidate


def command(main_class: str, *args: str, heap_mb: int = 512, jvm: tuple[str, ...] = ()) -> list[str]:
    """The full argv that runs `main_class` of Kafka, e.g. command("kafka.Kafka", "server.properties")."""
    classpath = f"{jars()}/*"  # java expands the wildcard itself: no shell needed
    return [java(), f"-Xmx{heap_mb}m", f"-Xms{heap_mb}m", *jvm, "-cp", classpath, main_class, *args]


def sha512_of(published: str) -> str:
    """The digest in a .sha512 file: Apache's `gpg --print-md SHA512` format or plain `sha512sum`'s."""
    # gpg writes "kafka_2.13-4.1.1.tgz: E7C22B99 4C59D9CF ..." in upper-case groups of 8 over three lines
    # (measured, gpg 2.2 on Debian 12); sha512sum writes "<128 hex>  kafka_2.13-4.1.1.tgz".
    digest = "".join(word for word in published.split() if re.fullmatch(r"[0-9A-Fa-f]+", word)).lower()
    if len(digest) != 128:
        raise StackError("the published SHA-512 of Apache Kafka is unreadable: set FLASHSALE_KAFKA_MIRROR to "
                         "another Apache mirror, or install Maven and run `flashsale kafka install` again.")
    return digest


def _has_kafka(folder: Path) -> bool:
    return any(folder.glob(f"kafka_{SCALA}-*.jar"))


def has_tools(folder: Path) -> bool:
    """Does the folder hold Kafka's command-line tools (kafka-tools-<version>.jar, not kafka-tools-api)?"""
    return any(folder.glob(TOOLS_JAR))


def _move(staged: Path, target: Path) -> None:
    """Rename the finished folder into place; if another install got there first, keep its jars."""
    if _has_kafka(target):  # installed before the tools were: add the jars it lacks, the tools' last
        for jar in sorted(staged.glob("*.jar"), key=lambda path: path.match(TOOLS_JAR)):
            if not (target / jar.name).exists():
                os.replace(jar, target / jar.name)  # only new names: a broker running from `target` keeps its jars
        return
    if target.exists() and not _has_kafka(target):  # a folder left there without Kafka in it
        shutil.rmtree(target)
    try:
        os.replace(staged, target)
    except OSError:
        if not _has_kafka(target):
            raise


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(message, file=sys.stderr)


def _from_bundle(source: Path, folder: Path) -> None:
    """The jars of an offline bundle (`flashsale bundle DIR` wrote them to DIR/kafka): no network."""
    jars_in = next((f for f in (source / "kafka", source) if _has_kafka(f)), None)
    if jars_in is None:
        raise StackError(f"{source} holds no Kafka jars (kafka/kafka_{SCALA}-*.jar): name the folder that "
                         f"`flashsale bundle` wrote.")
    if version(jars_in) != KAFKA_VERSION:
        raise StackError(f"{jars_in} holds Apache Kafka {version(jars_in)}, and this kit runs {KAFKA_VERSION}: "
                         f"make the bundle with this version of the kit.")
    for jar in jars_in.glob("*.jar"):
        shutil.copyfile(jar, folder / jar.name)


def _from_maven(folder: Path, quiet: bool) -> None:
    """Kafka's jars and their runtime dependencies from Maven Central, through ~/.m2."""
    # 46 jars (53 with the tools); measured 3.8 s with ~/.m2 warm, 13 s with only the dependency plugin to fetch,
    # ~40 s cold; adding the tools' 7 jars to a warm install took 5.9 s.
    _say(quiet, f"fetching Apache Kafka {KAFKA_VERSION} with Maven (once; ~/.m2 keeps the jars)")
    shutil.copy(POM, folder.parent / "pom.xml")  # mvn may write beside its pom: not into the installed package
    done = subprocess.run(["mvn", "-q", "-B", "-f", str(folder.parent / "pom.xml"), f"-Dkafka.version={KAFKA_VERSION}",
                           "dependency:copy-dependencies", f"-DoutputDirectory={folder}", "-DincludeScope=runtime"],
                          capture_output=True, text=True)
    if done.returncode:
        # mvn -q prints "[ERROR] Failed to execute goal ... -> [Help 1]" first, colour codes even with -B.
        lines = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr).splitlines()
        reason = next((line.removeprefix("[ERROR] ").split(" -> ")[0] for line in lines if line.startswith("[ERROR]")),
                      f"exit status {done.returncode}")
        raise StackError(f"Maven could not fetch Apache Kafka ({reason}): check that Maven Central is reachable (a "
                         f"proxy goes in ~/.m2/settings.xml), or set FLASHSALE_KAFKA_HOME to a Kafka release folder.")


def _from_release(folder: Path, quiet: bool) -> None:
    """The libs/ of Apache's release tarball, checked against its published SHA-512."""
    base = os.environ.get("FLASHSALE_KAFKA_MIRROR", ARCHIVE).rstrip("/") + "/"
    url, tarball = f"{base}{RELEASE}.tgz", folder.parent / f"{RELEASE}.tgz"
    _say(quiet, f"downloading {url} (once; with Maven installed, only the broker's jars are fetched)")
    digest = hashlib.sha512()
    try:
        with httpx.Client(follow_redirects=True, timeout=60) as client:
            expected = sha512_of(client.get(f"{url}.sha512").raise_for_status().text)
            with client.stream("GET", url) as response, open(tarball, "wb") as out:
                response.raise_for_status()
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    out.write(chunk)
    except httpx.HTTPError as error:  # httpx's own message for a 404 runs over two lines: keep to one
        reason = (f"HTTP {error.response.status_code} for {error.request.url.path.rpartition('/')[2]}"
                  if isinstance(error, httpx.HTTPStatusError) else (str(error) or type(error).__name__).splitlines()[0])
        raise StackError(f"Apache Kafka could not be downloaded from {base} ({reason}): check the network, set "
                         f"FLASHSALE_KAFKA_MIRROR to an Apache mirror, or install Maven.") from None
    if digest.hexdigest() != expected:
        tarball.unlink()
        raise StackError(f"{url} does not match its published SHA-512, so it was deleted: try again, or set "
                         f"FLASHSALE_KAFKA_MIRROR to another Apache mirror.")
    with tarfile.open(tarball) as archive:
        for member in archive.getmembers():
            # Only regular files named exactly kafka_2.13-<version>/libs/<name>.jar, flattened into `folder`;
            # the "data" filter refuses whatever still looks like an escape (absolute paths, links, devices).
            parts = PurePosixPath(member.name).parts
            if member.isfile() and parts[:2] == (RELEASE, "libs") and len(parts) == 3 and parts[2].endswith(".jar"):
                member.name = parts[2]
                archive.extract(member, folder, filter="data")
    tarball.unlink()
