import {eventsList} from '../../cli/defs/events.js'
import {oclifCommand} from '../../cli/oclif-adapter.js'

export default oclifCommand(eventsList)
