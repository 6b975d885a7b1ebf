/*
 * impulse-powerfs: a FUSE pass-through file system that can lose power.
 *
 *   impulse-powerfs <backing-directory> <mountpoint>
 *
 * The mount shows <backing-directory>/root. Every operation goes through to it at once, but the
 * file system remembers what is not durable yet, in the manner of LazyFS (which etcd's robustness
 * tests use):
 *
 *   - file contents changed since the file was last fsynced (fsync or fdatasync of any of its
 *     handles): the size it had then, and the bytes it held then wherever they were overwritten or
 *     truncated away;
 *   - creations (files and folders), renames and removals not yet made durable. A creation or a
 *     rename is made durable by an fsync of the file itself or of a folder it was made in (for a
 *     rename, the folder it left or the one it entered); a removal by an fsync of its folder.
 *     Removed files and folders, and files a rename replaced, wait in <backing-directory>/trash
 *     until then.
 *
 * A power cut (the line `cut` on standard input) puts everything back as it was when last made
 * durable: contents first, then the pending operations undone newest first. Every handle opened
 * before the cut answers EIO from then on. The processes using the mount must be gone before the
 * cut (a power cut takes them down too): the caller kills them first.
 *
 * Standard input takes one command per line, each answered by one line on standard output:
 *   cut    ->  cut files=<n> operations=<n> bytes=<n>
 *   stats  ->  stats dirty-files=<n> pending-operations=<n> unsynced-bytes=<n> cuts=<n>
 *   lie    ->  lie
 * `lie` plants a bug on purpose, for tests that must show they catch one: from then on every fsync
 * and fsyncdir succeeds without making anything durable (a disk that lies), so that the next cut
 * drops everything written since, acknowledged or not.
 * End of input unmounts the file system and exits, so a mount never outlives its owner.
 * Diagnostics go to standard error. The fsyncs themselves are not passed on: this file system
 * simulates power loss for tests, it does not protect the backing disk.
 */
#define FUSE_USE_VERSION 312
#define _GNU_SOURCE

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

/* ---- state ---------------------------------------------------------------------------------- */

static int root_fd = -1;  /* <backing>/root */
static int trash_fd = -1; /* <backing>/trash */
static char mountpoint[PATH_MAX];
static pthread_t main_thread;
static struct fuse *fuse_instance;

/* One lock for everything that changes contents, names or the bookkeeping. Reads take it too,
 * briefly, to check their handle is from before no cut; the work itself is done outside. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long generation = 1;
static unsigned long cuts = 0;
/* Whether fsyncs are acknowledged without making anything durable (the `lie` command). */
static int lying = 0;
static unsigned long trash_counter = 0;

struct handle {
	int fd;
	int flags;
	unsigned long generation;
	DIR *dir; /* folders only */
};

/* Bytes a change overwrote or truncated away, as they were when the file was last synced. */
struct piece {
	off_t offset;
	size_t length;
	char *bytes;
	struct piece *next;
};

/* A file whose contents changed since it was last synced. */
struct dirty {
	ino_t ino;
	int fd; /* its own read-write handle, valid whatever the file's name becomes */
	off_t durable_size;
	unsigned long long unsynced_bytes;
	struct piece *pieces; /* disjoint, newest first */
	struct dirty *next;
};
static struct dirty *dirty_files;

enum operation_kind { OP_CREATE, OP_MKDIR, OP_RENAME, OP_UNLINK, OP_RMDIR };

/* A creation, rename or removal no fsync made durable yet, oldest first. */
struct operation {
	enum operation_kind kind;
	ino_t ino;     /* the file or folder it concerns */
	ino_t folder;  /* the folder of `path` */
	ino_t folder2; /* renames: the folder of `path2` */
	char *path;    /* created or removed name; renames: the old name */
	char *path2;   /* renames: the new name */
	char *trash;   /* removals: where the removed entry waits; renames: the replaced entry, if any */
	ino_t replaced_folder; /* renames over an (empty) folder: that folder */
	struct operation *previous, *next;
};
static struct operation *operations_first, *operations_last;
static unsigned long operations_count;

static int tracing;

/* IMPULSE_POWERFS_TRACE=1: one line per operation that changes anything, on standard error. */
static void trace(const char *format, ...)
{
	if (!tracing)
		return;
	va_list arguments;
	va_start(arguments, format);
	fprintf(stderr, "impulse-powerfs: trace: ");
	vfprintf(stderr, format, arguments);
	fputc('\n', stderr);
	va_end(arguments);
}

static void diagnose(const char *format, ...)
{
	va_list arguments;
	va_start(arguments, format);
	fprintf(stderr, "impulse-powerfs: ");
	vfprintf(stderr, format, arguments);
	fputc('\n', stderr);
	va_end(arguments);
}

/* "/a/b" -> "a/b"; "/" -> "." (relative to root_fd). */
static const char *relative(const char *path)
{
	while (*path == '/')
		path++;
	return *path == '\0' ? "." : path;
}

/* The folder holding `rel`, relative to root_fd, in `out`. */
static void parent_of(const char *rel, char *out, size_t size)
{
	const char *slash = strrchr(rel, '/');
	if (slash == NULL) {
		snprintf(out, size, ".");
		return;
	}
	size_t length = (size_t)(slash - rel);
	if (length >= size)
		length = size - 1;
	memcpy(out, rel, length);
	out[length] = '\0';
}

static int inode_at(int dirfd, const char *rel, ino_t *ino)
{
	struct stat st;
	if (fstatat(dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return -errno;
	*ino = st.st_ino;
	return 0;
}

static int folder_inode(const char *rel, ino_t *ino)
{
	char parent[PATH_MAX];
	parent_of(rel, parent, sizeof parent);
	return inode_at(root_fd, parent, ino);
}

static struct handle *handle_of(struct fuse_file_info *fi)
{
	return (struct handle *)(uintptr_t)fi->fh;
}

static int stale(const struct handle *handle)
{
	return handle->generation != generation;
}

/* ---- contents ------------------------------------------------------------------------------- */

static struct dirty *find_dirty(ino_t ino)
{
	for (struct dirty *dirty = dirty_files; dirty != NULL; dirty = dirty->next)
		if (dirty->ino == ino)
			return dirty;
	return NULL;
}

/* The record of a file about to change, made (with the size it has now) if it is clean. */
static struct dirty *dirty_for(int fd, const struct stat *st)
{
	struct dirty *dirty = find_dirty(st->st_ino);
	if (dirty != NULL)
		return dirty;
	char proc[64];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	int own = open(proc, O_RDWR | O_CLOEXEC);
	if (own < 0)
		return NULL;
	dirty = calloc(1, sizeof *dirty);
	if (dirty == NULL) {
		close(own);
		return NULL;
	}
	dirty->ino = st->st_ino;
	dirty->fd = own;
	dirty->durable_size = st->st_size;
	dirty->next = dirty_files;
	dirty_files = dirty;
	return dirty;
}

static void free_dirty(struct dirty *dirty)
{
	struct piece *piece = dirty->pieces;
	while (piece != NULL) {
		struct piece *next = piece->next;
		free(piece->bytes);
		free(piece);
		piece = next;
	}
	close(dirty->fd);
	free(dirty);
}

static void forget_dirty(ino_t ino)
{
	for (struct dirty **link = &dirty_files; *link != NULL; link = &(*link)->next) {
		if ((*link)->ino == ino) {
			struct dirty *dirty = *link;
			*link = dirty->next;
			free_dirty(dirty);
			return;
		}
	}
}

/* The saved piece covering `offset`, or the first one starting after it (NULL if none). */
static const struct piece *piece_at_or_after(const struct dirty *dirty, off_t offset, int *covers)
{
	const struct piece *after = NULL;
	*covers = 0;
	for (const struct piece *piece = dirty->pieces; piece != NULL; piece = piece->next) {
		off_t end = piece->offset + (off_t)piece->length;
		if (piece->offset <= offset && offset < end) {
			*covers = 1;
			return piece;
		}
		if (piece->offset > offset && (after == NULL || piece->offset < after->offset))
			after = piece;
	}
	return after;
}

/* Saves the synced bytes in [from, to) that no earlier change saved, before they are changed. */
static int save_synced_bytes(struct dirty *dirty, off_t from, off_t to)
{
	if (to > dirty->durable_size)
		to = dirty->durable_size;
	while (from < to) {
		int covers;
		const struct piece *piece = piece_at_or_after(dirty, from, &covers);
		if (covers) {
			from = piece->offset + (off_t)piece->length;
			continue;
		}
		off_t end = piece == NULL || piece->offset > to ? to : piece->offset;
		struct piece *saved = calloc(1, sizeof *saved);
		if (saved == NULL)
			return -ENOMEM;
		saved->offset = from;
		saved->length = (size_t)(end - from);
		saved->bytes = malloc(saved->length);
		if (saved->bytes == NULL) {
			free(saved);
			return -ENOMEM;
		}
		size_t done = 0;
		while (done < saved->length) {
			ssize_t n = pread(dirty->fd, saved->bytes + done, saved->length - done, from + (off_t)done);
			if (n < 0) {
				int error = -errno;
				free(saved->bytes);
				free(saved);
				return error;
			}
			if (n == 0) {
				/* The file is shorter than its synced size (truncated earlier): nothing left to save. */
				memset(saved->bytes + done, 0, saved->length - done);
				break;
			}
			done += (size_t)n;
		}
		saved->next = dirty->pieces;
		dirty->pieces = saved;
		from = end;
	}
	return 0;
}

/* Puts a file back as it was when last synced. Returns the unsynced bytes dropped. */
static unsigned long long revert_dirty(struct dirty *dirty)
{
	unsigned long long dropped = 0;
	struct stat st;
	if (fstat(dirty->fd, &st) == 0 && st.st_size > dirty->durable_size)
		dropped += (unsigned long long)(st.st_size - dirty->durable_size);
	if (ftruncate(dirty->fd, dirty->durable_size) != 0)
		diagnose("cut: truncating inode %lu: %s", (unsigned long)dirty->ino, strerror(errno));
	for (struct piece *piece = dirty->pieces; piece != NULL; piece = piece->next) {
		size_t done = 0;
		while (done < piece->length) {
			ssize_t n = pwrite(dirty->fd, piece->bytes + done, piece->length - done,
					   piece->offset + (off_t)done);
			if (n <= 0) {
				diagnose("cut: restoring inode %lu: %s", (unsigned long)dirty->ino, strerror(errno));
				break;
			}
			done += (size_t)n;
		}
		dropped += piece->length;
	}
	return dropped;
}

/* ---- names ---------------------------------------------------------------------------------- */

static char *trash_name(void)
{
	char *name = malloc(32);
	if (name != NULL)
		snprintf(name, 32, "t%lu", ++trash_counter);
	return name;
}

static struct operation *record(enum operation_kind kind, ino_t ino, ino_t folder, const char *path)
{
	struct operation *operation = calloc(1, sizeof *operation);
	if (operation == NULL)
		return NULL;
	operation->kind = kind;
	operation->ino = ino;
	operation->folder = folder;
	operation->path = strdup(path);
	operation->previous = operations_last;
	if (operations_last != NULL)
		operations_last->next = operation;
	else
		operations_first = operation;
	operations_last = operation;
	operations_count++;
	return operation;
}

static void unlink_operation(struct operation *operation)
{
	if (operation->previous != NULL)
		operation->previous->next = operation->next;
	else
		operations_first = operation->next;
	if (operation->next != NULL)
		operation->next->previous = operation->previous;
	else
		operations_last = operation->previous;
	operations_count--;
	free(operation->path);
	free(operation->path2);
	free(operation->trash);
	free(operation);
}

/* Removes an entry of the trash for good (a folder there is empty: only removals of empty
 * folders and renames over empty folders put folders there). */
static void purge_trash(const char *name)
{
	struct stat st;
	if (fstatat(trash_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return;
	if (unlinkat(trash_fd, name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) != 0)
		diagnose("purging trash/%s: %s", name, strerror(errno));
	if (!S_ISDIR(st.st_mode) && st.st_nlink <= 1)
		forget_dirty(st.st_ino);
}

static void make_durable(struct operation *operation);

/* Makes durable, one at a time, every pending operation `matches` selects. Each step starts over
 * from the oldest: making one durable can make others durable too (and free them). */
static void make_durable_where(int (*matches)(const struct operation *, ino_t), ino_t ino)
{
	for (;;) {
		struct operation *operation = operations_first;
		while (operation != NULL && !matches(operation, ino))
			operation = operation->next;
		if (operation == NULL)
			return;
		make_durable(operation);
	}
}

/* An operation made in `folder` (or, for a rename, leaving or entering it). */
static int made_in(const struct operation *operation, ino_t folder)
{
	return operation->folder == folder || (operation->kind == OP_RENAME && operation->folder2 == folder);
}

/* A creation of `ino`. */
static int creates(const struct operation *operation, ino_t ino)
{
	return (operation->kind == OP_CREATE || operation->kind == OP_MKDIR) && operation->ino == ino;
}

/* A creation or rename of `ino`. */
static int names(const struct operation *operation, ino_t ino)
{
	return creates(operation, ino) || (operation->kind == OP_RENAME && operation->ino == ino);
}

/*
 * An operation became durable. What it removed is gone for good, and so are the pending
 * operations inside a folder it removed: they can no longer be undone (and the folder's inode
 * number may be given to a new one). A rename made durable makes the file's creation durable too.
 */
static void make_durable(struct operation *operation)
{
	ino_t removed_folder = operation->kind == OP_RMDIR ? operation->ino : operation->replaced_folder;
	ino_t renamed = operation->kind == OP_RENAME ? operation->ino : 0;
	if (operation->trash != NULL)
		purge_trash(operation->trash);
	unlink_operation(operation);
	if (removed_folder != 0)
		make_durable_where(made_in, removed_folder);
	if (renamed != 0)
		make_durable_where(creates, renamed);
}

/* fsync of the file or folder `ino`: its creation and renames are durable. */
static void sync_entry(ino_t ino)
{
	make_durable_where(names, ino);
}

/* fsync of the folder `folder`: its own creation, and every operation made in it, are durable. */
static void sync_folder(ino_t folder)
{
	sync_entry(folder);
	make_durable_where(made_in, folder);
}

/* Undoes one pending operation (newest first, during a cut). */
static void undo(struct operation *operation)
{
	ino_t ino;
	switch (operation->kind) {
	case OP_CREATE:
		if (inode_at(root_fd, operation->path, &ino) == 0 && ino == operation->ino &&
		    unlinkat(root_fd, operation->path, 0) != 0)
			diagnose("cut: removing created %s: %s", operation->path, strerror(errno));
		break;
	case OP_MKDIR: {
		/* Whatever was made durable inside a folder whose creation was not goes with it. */
		if (inode_at(root_fd, operation->path, &ino) == 0 && ino == operation->ino) {
			char *name = trash_name();
			if (name == NULL || renameat(root_fd, operation->path, trash_fd, name) != 0)
				diagnose("cut: removing created folder %s: %s", operation->path, strerror(errno));
			free(name);
		}
		break;
	}
	case OP_RENAME:
		if (inode_at(root_fd, operation->path2, &ino) == 0 && ino == operation->ino &&
		    renameat2(root_fd, operation->path2, root_fd, operation->path, RENAME_NOREPLACE) != 0)
			diagnose("cut: renaming %s back to %s: %s", operation->path2, operation->path, strerror(errno));
		if (operation->trash != NULL &&
		    renameat2(trash_fd, operation->trash, root_fd, operation->path2, RENAME_NOREPLACE) != 0)
			diagnose("cut: restoring replaced %s: %s", operation->path2, strerror(errno));
		free(operation->trash);
		operation->trash = NULL;
		break;
	case OP_UNLINK:
	case OP_RMDIR:
		if (renameat2(trash_fd, operation->trash, root_fd, operation->path, RENAME_NOREPLACE) != 0)
			diagnose("cut: restoring removed %s: %s", operation->path, strerror(errno));
		free(operation->trash);
		operation->trash = NULL;
		break;
	}
}

/* Folders left in the trash by undone folder creations: removed with what they hold. */
static void empty_trash(int dirfd)
{
	DIR *dir = fdopendir(dup(dirfd));
	if (dir == NULL)
		return;
	struct dirent *entry;
	while ((entry = readdir(dir)) != NULL) {
		if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
			continue;
		struct stat st;
		if (fstatat(dirfd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int child = openat(dirfd, entry->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (child >= 0) {
				empty_trash(child);
				close(child);
			}
			unlinkat(dirfd, entry->d_name, AT_REMOVEDIR);
		} else {
			unlinkat(dirfd, entry->d_name, 0);
		}
	}
	closedir(dir);
}

static void power_cut(unsigned long *files, unsigned long *undone, unsigned long long *bytes)
{
	*files = 0;
	*undone = 0;
	*bytes = 0;
	while (dirty_files != NULL) {
		struct dirty *dirty = dirty_files;
		dirty_files = dirty->next;
		*bytes += revert_dirty(dirty);
		(*files)++;
		free_dirty(dirty);
	}
	while (operations_last != NULL) {
		struct operation *operation = operations_last;
		undo(operation);
		unlink_operation(operation);
		(*undone)++;
	}
	empty_trash(trash_fd);
	generation++;
	cuts++;
}

/* ---- operations ----------------------------------------------------------------------------- */

static void *powerfs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->use_ino = 1;
	cfg->nullpath_ok = 1;
	/* An unlinked file that is still open must not be renamed to .fuse_hidden*: that would be a
	 * rename of the file system's own, with nothing to undo it. */
	cfg->hard_remove = 1;
	/* The kernel keeps nothing across a cut: every lookup and attribute comes from here. */
	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	cfg->kernel_cache = 0;
	return NULL;
}

static int powerfs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	if (fi != NULL && fi->fh != 0)
		return fstat(handle_of(fi)->fd, st) == 0 ? 0 : -errno;
	return fstatat(root_fd, relative(path), st, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

static int powerfs_access(const char *path, int mask)
{
	return faccessat(root_fd, relative(path), mask, 0) == 0 ? 0 : -errno;
}

static int powerfs_readlink(const char *path, char *buffer, size_t size)
{
	ssize_t n = readlinkat(root_fd, relative(path), buffer, size - 1);
	if (n < 0)
		return -errno;
	buffer[n] = '\0';
	return 0;
}

static int powerfs_opendir(const char *path, struct fuse_file_info *fi)
{
	int fd = openat(root_fd, relative(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct handle *handle = calloc(1, sizeof *handle);
	if (handle == NULL) {
		close(fd);
		return -ENOMEM;
	}
	handle->fd = fd;
	pthread_mutex_lock(&lock);
	handle->generation = generation;
	pthread_mutex_unlock(&lock);
	fi->fh = (uintptr_t)handle;
	return 0;
}

static int powerfs_readdir(const char *path, void *buffer, fuse_fill_dir_t fill, off_t offset,
			   struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)path;
	(void)offset;
	(void)flags;
	struct handle *handle = handle_of(fi);
	if (handle->dir == NULL) {
		int fd = dup(handle->fd);
		if (fd < 0)
			return -errno;
		handle->dir = fdopendir(fd);
		if (handle->dir == NULL) {
			int error = -errno;
			close(fd);
			return error;
		}
	}
	rewinddir(handle->dir);
	struct dirent *entry;
	while ((entry = readdir(handle->dir)) != NULL) {
		struct stat st;
		memset(&st, 0, sizeof st);
		st.st_ino = entry->d_ino;
		st.st_mode = (mode_t)DTTOIF(entry->d_type);
		if (fill(buffer, entry->d_name, &st, 0, 0) != 0)
			break;
	}
	return 0;
}

static int powerfs_releasedir(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	struct handle *handle = handle_of(fi);
	if (handle->dir != NULL)
		closedir(handle->dir);
	close(handle->fd);
	free(handle);
	return 0;
}

static int powerfs_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	(void)datasync;
	struct handle *handle = handle_of(fi);
	struct stat st;
	pthread_mutex_lock(&lock);
	trace("fsyncdir %s", path == NULL ? "(unnamed)" : path);
	int result = 0;
	if (stale(handle))
		result = -EIO;
	else if (fstat(handle->fd, &st) != 0)
		result = -errno;
	else if (!lying)
		sync_folder(st.st_ino);
	pthread_mutex_unlock(&lock);
	return result;
}

static int powerfs_mkdir(const char *path, mode_t mode)
{
	const char *rel = relative(path);
	ino_t folder, ino;
	pthread_mutex_lock(&lock);
	int result = folder_inode(rel, &folder);
	if (result == 0)
		result = mkdirat(root_fd, rel, mode) == 0 ? 0 : -errno;
	if (result == 0 && inode_at(root_fd, rel, &ino) == 0)
		record(OP_MKDIR, ino, folder, rel);
	pthread_mutex_unlock(&lock);
	return result;
}

/* Removes `rel` by moving it to the trash, where it waits until the removal is durable. */
static int remove_entry(const char *path, enum operation_kind kind)
{
	const char *rel = relative(path);
	struct stat st;
	ino_t folder;
	pthread_mutex_lock(&lock);
	int result = folder_inode(rel, &folder);
	if (result == 0 && fstatat(root_fd, rel, &st, AT_SYMLINK_NOFOLLOW) != 0)
		result = -errno;
	if (result == 0 && kind == OP_UNLINK && S_ISDIR(st.st_mode))
		result = -EISDIR;
	if (result == 0 && kind == OP_RMDIR && !S_ISDIR(st.st_mode))
		result = -ENOTDIR;
	if (result == 0 && kind == OP_RMDIR) {
		/* rmdir of a folder that is not empty must fail as it would anywhere else. */
		int fd = openat(root_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *dir = fd < 0 ? NULL : fdopendir(fd);
		if (dir == NULL) {
			result = -errno;
			if (fd >= 0)
				close(fd);
		} else {
			struct dirent *entry;
			while ((entry = readdir(dir)) != NULL)
				if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
					result = -ENOTEMPTY;
			closedir(dir);
		}
	}
	char *name = result == 0 ? trash_name() : NULL;
	if (result == 0 && name == NULL)
		result = -ENOMEM;
	if (result == 0 && renameat(root_fd, rel, trash_fd, name) != 0)
		result = -errno;
	if (result == 0) {
		struct operation *operation = record(kind, st.st_ino, folder, rel);
		if (operation != NULL) {
			operation->trash = name;
			name = NULL;
		}
	}
	free(name);
	pthread_mutex_unlock(&lock);
	return result;
}

static int powerfs_unlink(const char *path)
{
	return remove_entry(path, OP_UNLINK);
}

static int powerfs_rmdir(const char *path)
{
	return remove_entry(path, OP_RMDIR);
}

static int powerfs_rename(const char *from, const char *to, unsigned int flags)
{
	if (flags & RENAME_EXCHANGE)
		return -EINVAL;
	const char *old_rel = relative(from);
	const char *new_rel = relative(to);
	struct stat source, target;
	ino_t old_folder, new_folder;
	char *name = NULL;
	pthread_mutex_lock(&lock);
	int result = folder_inode(old_rel, &old_folder);
	if (result == 0)
		result = folder_inode(new_rel, &new_folder);
	if (result == 0 && fstatat(root_fd, old_rel, &source, AT_SYMLINK_NOFOLLOW) != 0)
		result = -errno;
	int replaces = result == 0 && fstatat(root_fd, new_rel, &target, AT_SYMLINK_NOFOLLOW) == 0;
	if (replaces && (flags & RENAME_NOREPLACE))
		result = -EEXIST;
	if (result == 0 && replaces && target.st_ino == source.st_ino)
		goto done; /* the same file: nothing changes */
	if (result == 0 && replaces) {
		/* Keep the replaced entry in the trash: a cut before the rename is durable brings it back.
		 * A file is kept by a second link, so that the rename itself stays atomic. */
		name = trash_name();
		if (name == NULL)
			result = -ENOMEM;
		else if (S_ISDIR(target.st_mode) != S_ISDIR(source.st_mode))
			result = S_ISDIR(target.st_mode) ? -EISDIR : -ENOTDIR;
		else if (S_ISDIR(target.st_mode))
			result = renameat(root_fd, new_rel, trash_fd, name) == 0 ? 0 : -errno;
		else
			result = linkat(root_fd, new_rel, trash_fd, name, 0) == 0 ? 0 : -errno;
	}
	if (result == 0 && renameat(root_fd, old_rel, root_fd, new_rel) != 0) {
		result = -errno;
		if (name != NULL && S_ISDIR(target.st_mode))
			renameat(trash_fd, name, root_fd, new_rel);
		else if (name != NULL)
			unlinkat(trash_fd, name, 0);
	}
	if (result == 0) {
		struct operation *operation = record(OP_RENAME, source.st_ino, old_folder, old_rel);
		if (operation != NULL) {
			operation->folder2 = new_folder;
			operation->path2 = strdup(new_rel);
			operation->trash = name;
			if (replaces && S_ISDIR(target.st_mode))
				operation->replaced_folder = target.st_ino;
			name = NULL;
		}
	}
done:
	free(name);
	pthread_mutex_unlock(&lock);
	return result;
}

static int powerfs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	if (fi != NULL && fi->fh != 0)
		return fchmod(handle_of(fi)->fd, mode) == 0 ? 0 : -errno;
	return fchmodat(root_fd, relative(path), mode, 0) == 0 ? 0 : -errno;
}

static int powerfs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	if (fi != NULL && fi->fh != 0)
		return fchown(handle_of(fi)->fd, uid, gid) == 0 ? 0 : -errno;
	return fchownat(root_fd, relative(path), uid, gid, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

static int powerfs_utimens(const char *path, const struct timespec times[2], struct fuse_file_info *fi)
{
	if (fi != NULL && fi->fh != 0)
		return futimens(handle_of(fi)->fd, times) == 0 ? 0 : -errno;
	return utimensat(root_fd, relative(path), times, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
}

/* Changes the size of the open file `fd`, keeping the synced bytes it cuts off. Lock held. */
static int truncate_locked(int fd, off_t size)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (size == st.st_size && find_dirty(st.st_ino) == NULL)
		return 0;
	struct dirty *dirty = dirty_for(fd, &st);
	if (dirty == NULL)
		return -errno != 0 ? -errno : -ENOMEM;
	if (size < st.st_size) {
		int saved = save_synced_bytes(dirty, size, st.st_size);
		if (saved != 0)
			return saved;
	}
	return ftruncate(dirty->fd, size) == 0 ? 0 : -errno;
}

static int powerfs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	pthread_mutex_lock(&lock);
	int result;
	if (fi != NULL && fi->fh != 0) {
		struct handle *handle = handle_of(fi);
		result = stale(handle) ? -EIO : truncate_locked(handle->fd, size);
	} else {
		int fd = openat(root_fd, relative(path), O_WRONLY | O_CLOEXEC);
		if (fd < 0) {
			result = -errno;
		} else {
			result = truncate_locked(fd, size);
			close(fd);
		}
	}
	pthread_mutex_unlock(&lock);
	return result;
}

static int open_handle(int fd, int flags, struct fuse_file_info *fi)
{
	struct handle *handle = calloc(1, sizeof *handle);
	if (handle == NULL)
		return -ENOMEM;
	handle->fd = fd;
	handle->flags = flags;
	handle->generation = generation;
	fi->fh = (uintptr_t)handle;
	return 0;
}

static int powerfs_open(const char *path, struct fuse_file_info *fi)
{
	/* O_TRUNC is done here, so that the bytes it cuts off are kept. */
	int flags = fi->flags & ~(O_TRUNC | O_CREAT | O_EXCL);
	pthread_mutex_lock(&lock);
	int fd = openat(root_fd, relative(path), flags | O_CLOEXEC);
	int result = fd < 0 ? -errno : 0;
	if (result == 0 && (fi->flags & O_TRUNC))
		result = truncate_locked(fd, 0);
	if (result == 0)
		result = open_handle(fd, flags, fi);
	if (result != 0 && fd >= 0)
		close(fd);
	pthread_mutex_unlock(&lock);
	return result;
}

static int powerfs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	const char *rel = relative(path);
	int flags = fi->flags & ~(O_TRUNC | O_CREAT | O_EXCL);
	ino_t folder;
	struct stat st;
	pthread_mutex_lock(&lock);
	int result = folder_inode(rel, &folder);
	int existed = result == 0 && fstatat(root_fd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (existed && (fi->flags & O_EXCL))
		result = -EEXIST;
	int fd = -1;
	if (result == 0) {
		fd = openat(root_fd, rel, flags | O_CREAT | O_CLOEXEC, mode);
		if (fd < 0)
			result = -errno;
	}
	if (result == 0 && existed && (fi->flags & O_TRUNC))
		result = truncate_locked(fd, 0);
	if (result == 0 && !existed && fstat(fd, &st) == 0)
		record(OP_CREATE, st.st_ino, folder, rel);
	if (result == 0)
		result = open_handle(fd, flags, fi);
	if (result != 0 && fd >= 0)
		close(fd);
	pthread_mutex_unlock(&lock);
	return result;
}

static int powerfs_read(const char *path, char *buffer, size_t size, off_t offset, struct fuse_file_info *fi)
{
	(void)path;
	struct handle *handle = handle_of(fi);
	pthread_mutex_lock(&lock);
	int is_stale = stale(handle);
	pthread_mutex_unlock(&lock);
	if (is_stale)
		return -EIO;
	ssize_t n = pread(handle->fd, buffer, size, offset);
	return n < 0 ? -errno : (int)n;
}

static int powerfs_write(const char *path, const char *buffer, size_t size, off_t offset,
			 struct fuse_file_info *fi)
{
	(void)path;
	struct handle *handle = handle_of(fi);
	struct stat st;
	pthread_mutex_lock(&lock);
	int result = 0;
	if (stale(handle))
		result = -EIO;
	else if (fstat(handle->fd, &st) != 0)
		result = -errno;
	trace("write %s %zu bytes at %lld", path == NULL ? "(unnamed)" : path, size, (long long)offset);
	if (result == 0) {
		if (handle->flags & O_APPEND)
			offset = st.st_size;
		struct dirty *dirty = dirty_for(handle->fd, &st);
		if (dirty == NULL)
			result = errno != 0 ? -errno : -ENOMEM;
		else
			result = save_synced_bytes(dirty, offset, offset + (off_t)size);
		if (result == 0) {
			ssize_t n = pwrite(handle->fd, buffer, size, offset);
			if (n < 0) {
				result = -errno;
			} else {
				dirty->unsynced_bytes += (unsigned long long)n;
				result = (int)n;
			}
		}
	}
	pthread_mutex_unlock(&lock);
	return result;
}

static int powerfs_statfs(const char *path, struct statvfs *st)
{
	(void)path;
	return fstatvfs(root_fd, st) == 0 ? 0 : -errno;
}

static int powerfs_flush(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	(void)fi;
	return 0;
}

static int powerfs_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	struct handle *handle = handle_of(fi);
	close(handle->fd);
	free(handle);
	return 0;
}

static int powerfs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	(void)datasync;
	struct handle *handle = handle_of(fi);
	struct stat st;
	pthread_mutex_lock(&lock);
	trace("fsync %s", path == NULL ? "(unnamed)" : path);
	int result = 0;
	if (stale(handle))
		result = -EIO;
	else if (fstat(handle->fd, &st) != 0)
		result = -errno;
	else if (!lying) {
		/* Contents and the file's own name are durable now. fdatasync is treated as fsync:
		 * the size is the metadata that matters, and fdatasync makes a changed size durable. */
		forget_dirty(st.st_ino);
		sync_entry(st.st_ino);
	}
	pthread_mutex_unlock(&lock);
	return result;
}

static int refuse_link(const char *from, const char *to)
{
	(void)from;
	(void)to;
	return -EPERM;
}

static const struct fuse_operations operations = {
	.init = powerfs_init,
	.getattr = powerfs_getattr,
	.access = powerfs_access,
	.readlink = powerfs_readlink,
	.opendir = powerfs_opendir,
	.readdir = powerfs_readdir,
	.releasedir = powerfs_releasedir,
	.fsyncdir = powerfs_fsyncdir,
	.mkdir = powerfs_mkdir,
	.unlink = powerfs_unlink,
	.rmdir = powerfs_rmdir,
	.rename = powerfs_rename,
	.symlink = refuse_link,
	.link = refuse_link,
	.chmod = powerfs_chmod,
	.chown = powerfs_chown,
	.utimens = powerfs_utimens,
	.truncate = powerfs_truncate,
	.open = powerfs_open,
	.create = powerfs_create,
	.read = powerfs_read,
	.write = powerfs_write,
	.statfs = powerfs_statfs,
	.flush = powerfs_flush,
	.release = powerfs_release,
	.fsync = powerfs_fsync,
};

/* ---- control -------------------------------------------------------------------------------- */

static void on_wake(int signal_number)
{
	(void)signal_number;
}

static void *control(void *unused)
{
	(void)unused;
	char line[256];
	while (fgets(line, sizeof line, stdin) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		pthread_mutex_lock(&lock);
		if (strcmp(line, "cut") == 0) {
			unsigned long files, undone;
			unsigned long long bytes;
			power_cut(&files, &undone, &bytes);
			printf("cut files=%lu operations=%lu bytes=%llu\n", files, undone, bytes);
		} else if (strcmp(line, "stats") == 0) {
			unsigned long files = 0;
			unsigned long long unsynced = 0;
			for (struct dirty *dirty = dirty_files; dirty != NULL; dirty = dirty->next) {
				files++;
				unsynced += dirty->unsynced_bytes;
			}
			printf("stats dirty-files=%lu pending-operations=%lu unsynced-bytes=%llu cuts=%lu\n", files,
			       operations_count, unsynced, cuts);
		} else if (strcmp(line, "lie") == 0) {
			lying = 1;
			diagnose("lying from now on: fsyncs make nothing durable (a planted bug)");
			printf("lie\n");
		} else {
			printf("error unknown command \"%s\" (cut, stats, lie)\n", line);
		}
		fflush(stdout);
		pthread_mutex_unlock(&lock);
	}
	/* The owner is gone: unmount, so that the mount never outlives it. */
	fuse_exit(fuse_instance);
	if (umount2(mountpoint, MNT_DETACH) != 0) {
		char command[PATH_MAX + 32];
		snprintf(command, sizeof command, "fusermount3 -u -z '%s'", mountpoint);
		if (system(command) != 0)
			diagnose("could not unmount %s", mountpoint);
	}
	pthread_kill(main_thread, SIGUSR1);
	return NULL;
}

static int open_folder(const char *base, const char *name)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", base, name);
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		diagnose("cannot make %s: %s", path, strerror(errno));
		return -1;
	}
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		diagnose("cannot open %s: %s", path, strerror(errno));
	return fd;
}

int main(int argc, char *argv[])
{
	if (argc != 3) {
		fprintf(stderr, "usage: impulse-powerfs <backing-directory> <mountpoint>\n"
				"  A FUSE pass-through of <backing-directory>/root that drops, at a power cut,\n"
				"  what was not made durable by fsync. Commands on standard input: cut, stats.\n");
		return 2;
	}
	if (realpath(argv[2], mountpoint) == NULL) {
		diagnose("mountpoint %s: %s", argv[2], strerror(errno));
		return 1;
	}
	root_fd = open_folder(argv[1], "root");
	trash_fd = open_folder(argv[1], "trash");
	if (root_fd < 0 || trash_fd < 0)
		return 1;
	/* What a previous daemon left in the trash (it died before a cut or a sync) is stale. */
	empty_trash(trash_fd);
	setvbuf(stdout, NULL, _IOLBF, 0);
	tracing = getenv("IMPULSE_POWERFS_TRACE") != NULL && strcmp(getenv("IMPULSE_POWERFS_TRACE"), "1") == 0;

	struct sigaction wake;
	memset(&wake, 0, sizeof wake);
	wake.sa_handler = on_wake; /* no SA_RESTART: the main loop's wait is interrupted */
	sigaction(SIGUSR1, &wake, NULL);

	char *fuse_argv[] = { argv[0], "-o", "fsname=impulse-powerfs,subtype=impulse-powerfs", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fuse_argv);
	fuse_instance = fuse_new(&args, &operations, sizeof operations, NULL);
	if (fuse_instance == NULL) {
		diagnose("fuse_new failed");
		return 1;
	}
	if (fuse_mount(fuse_instance, mountpoint) != 0) {
		diagnose("cannot mount %s (is /dev/fuse there, and fuse3 installed?)", mountpoint);
		fuse_destroy(fuse_instance);
		return 1;
	}
	if (fuse_set_signal_handlers(fuse_get_session(fuse_instance)) != 0) {
		diagnose("cannot set signal handlers");
		fuse_unmount(fuse_instance);
		fuse_destroy(fuse_instance);
		return 1;
	}
	main_thread = pthread_self();
	pthread_t control_thread;
	if (pthread_create(&control_thread, NULL, control, NULL) != 0) {
		diagnose("cannot start the control thread");
		fuse_unmount(fuse_instance);
		fuse_destroy(fuse_instance);
		return 1;
	}
	pthread_detach(control_thread);
	printf("ready\n");
	struct fuse_loop_config *config = fuse_loop_cfg_create();
	int result = fuse_loop_mt(fuse_instance, config);
	fuse_loop_cfg_destroy(config);
	fuse_remove_signal_handlers(fuse_get_session(fuse_instance));
	fuse_unmount(fuse_instance);
	fuse_destroy(fuse_instance);
	return result == 0 ? 0 : 1;
}
